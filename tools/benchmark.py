"""Benchmarks against peer libraries; the same as `densekit bench` (see benchmarks/harness.py)."""
import sys

from densekit.cli import main

if __name__ == '__main__':
    sys.exit(main(['bench', *sys.argv[1:]]))
