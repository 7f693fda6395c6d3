"""Benchmarks against the emulator: ``python -m bench.run`` (all), ``--smoke`` (CI). See docs/benchmarks.md."""
