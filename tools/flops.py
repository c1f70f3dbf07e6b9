"""OpenMMLab-style `flops` script; the same as `densekit flops` (see densekit/cli.py)."""
import sys

from densekit.cli import main

if __name__ == '__main__':
    sys.exit(main(['flops', *sys.argv[1:]]))
