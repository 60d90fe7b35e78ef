"""Where predictions go, one module each behind ``Sink``: JSONL (the ledger a resumed run reads), CSV, Parquet,
pictures, videos (per-frame JSONL, annotated video), stdout."""

from __future__ import annotations

from mobilenetv2.inference.stream.sinks.base import Sink

__all__ = ["Sink"]
