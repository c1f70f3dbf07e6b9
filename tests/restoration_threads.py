"""Shared by the restoration tests: run each test module on the idle CPU cores only.

On a 2-core machine shared with other test runs, OpenMP threads waiting for each other make
small convolutions many times slower than a single thread; the previous thread count is
restored after the module.
"""
from __future__ import annotations

from typing import Iterator

import pytest

from densekit.threads import idle_cpu_threads, torch_threads


@pytest.fixture(autouse=True, scope='module')
def idle_threads() -> Iterator[None]:
    with torch_threads(idle_cpu_threads()):
        yield
