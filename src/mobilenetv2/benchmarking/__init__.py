"""Benchmarking: interleaved timing shared by `compare`, `benchmark` and the scripts in benchmarks/."""

from mobilenetv2.benchmarking.timing import TimingStats, percentile, restores_threads, time_interleaved, torch_threads

__all__ = ["TimingStats", "percentile", "restores_threads", "time_interleaved", "torch_threads"]
