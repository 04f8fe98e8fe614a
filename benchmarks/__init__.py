"""Benchmarks (not tests): `python -m benchmarks` measures and rewrites BENCHMARKS.md."""
