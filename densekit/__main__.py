"""``python -m densekit``: the ``densekit`` command."""
import sys

from densekit.cli import main

sys.exit(main())
