"""OpenMMLab-style `test` script; the same as `densekit test` (see densekit/cli.py)."""
import sys

from densekit.cli import main

if __name__ == '__main__':
    sys.exit(main(['test', *sys.argv[1:]]))
