"""OpenMMLab-style `analyze` script; the same as `densekit analyze` (see densekit/cli.py)."""
import sys

from densekit.cli import main

if __name__ == '__main__':
    sys.exit(main(['analyze', *sys.argv[1:]]))
