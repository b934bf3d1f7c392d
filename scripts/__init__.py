"""Collect, figures, claim checks, report and benchmarks. Reads only the result store."""
