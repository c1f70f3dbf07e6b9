"""OpenMMLab-style `plot-log` script; the same as `densekit plot-log` (see densekit/cli.py)."""
import sys

from densekit.cli import main

if __name__ == '__main__':
    sys.exit(main(['plot-log', *sys.argv[1:]]))
