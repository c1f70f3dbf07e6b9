"""`densekit plan` as a script: plan a medical dataset folder (see densekit/cli.py)."""
import sys

from densekit.cli import main

if __name__ == '__main__':
    sys.exit(main(['plan', *sys.argv[1:]]))
