"""Benchmarks: each module has `run(args) -> dict` of measurements, printed as JSON by `bin/benchmark`."""
