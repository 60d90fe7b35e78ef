"""Benchmarking: interleaved timing shared by `compare`, `benchmark` and the scripts in benchmarks/."""

from mobilenetv2.benchmarking.timing import TimingStats, percentile, time_interleaved

__all__ = ["TimingStats", "percentile", "time_interleaved"]
