"""Prediction as a stream: sources (files, folders, globs, list files, videos, cameras, network streams) -> decoding
beside the model -> batches on any backend -> results in input order -> sinks (JSONL, CSV, Parquet, pictures,
annotated videos), resumable, with memory bounded whatever the number of inputs."""

from __future__ import annotations

from mobilenetv2.inference.stream.frames import Failure, Frame, Result, SourceEnd
from mobilenetv2.inference.stream.pipeline import Pipeline, StreamOptions, predict_stream
from mobilenetv2.inference.stream.sources import open_sources

__all__ = ["Failure", "Frame", "Pipeline", "Result", "SourceEnd", "StreamOptions", "open_sources", "predict_stream"]
