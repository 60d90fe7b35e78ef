"""Benchmarking: inference speed of every deployment path (`benchmark`) and model comparison (`compare`)."""
