"""Dataset doctor script; the same as `densekit check-data` (see densekit/cli.py)."""
import sys

from densekit.cli import main

if __name__ == '__main__':
    sys.exit(main(['check-data', *sys.argv[1:]]))
