"""OpenMMLab-style `env` script; the same as `densekit env` (see densekit/cli.py)."""
import sys

from densekit.cli import main

if __name__ == '__main__':
    sys.exit(main(['env', *sys.argv[1:]]))
