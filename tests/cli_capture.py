"""Run ``densekit.cli.main`` in-process and capture what it prints.

Not pytest's ``capsys``: an mmengine logger created inside the call keeps the stream it was
given, and capsys closes its stream after the test, so a later test's logging would fail with
"I/O operation on closed file". These buffers stay open.
"""
from __future__ import annotations

import contextlib
import io
from typing import Sequence, Tuple


def run_cli(args: Sequence[str]) -> Tuple[int, str, str]:
    """``(exit status, stdout, stderr)`` of ``densekit ARGS``."""
    from densekit.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(args))
    return code, out.getvalue(), err.getvalue()
