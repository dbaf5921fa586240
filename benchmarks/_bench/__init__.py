"""Helpers of the end-to-end operator benchmark (``benchmarks/bench_operator.py``)."""
