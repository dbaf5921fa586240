"""Tools for demos, tests and benchmarks: a stand-in executor. Not used by the operator itself."""
