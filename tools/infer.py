"""OpenMMLab-style `infer` script; the same as `densekit infer` (see densekit/cli.py)."""
import sys

from densekit.cli import main

if __name__ == '__main__':
    sys.exit(main(['infer', *sys.argv[1:]]))
