"""densekit's benchmarks against its peer libraries (``densekit bench`` / tools/benchmark.py).

A source-checkout folder next to ``densekit/`` and ``tools/``, not part of the installed
package: each module registers its suites with :func:`benchmarks.harness.suite`.
"""
