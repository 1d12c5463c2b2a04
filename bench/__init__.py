"""Benchmarks: `uv run python bench/api.py` (see its docstring). Not part of the shipped packages."""
