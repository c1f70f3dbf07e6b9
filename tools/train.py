"""OpenMMLab-style `train` script; the same as `densekit train` (see densekit/cli.py)."""
import sys

from densekit.cli import main

if __name__ == '__main__':
    sys.exit(main(['train', *sys.argv[1:]]))
