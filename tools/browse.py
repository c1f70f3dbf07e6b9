"""OpenMMLab-style `browse` script; the same as `densekit browse` (see densekit/cli.py)."""
import sys

from densekit.cli import main

if __name__ == '__main__':
    sys.exit(main(['browse', *sys.argv[1:]]))
