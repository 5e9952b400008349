"""Benchmarks, one command each (`python -m bench.NAME --help`); results print as tables."""
