"""Benchmark suite: ``python -m bench`` (see ``bench/RESULTS.md`` and the README)."""
