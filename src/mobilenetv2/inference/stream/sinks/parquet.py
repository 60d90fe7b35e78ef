"""``predictions.parquet``: the ledger's records as a columnar file, for runs too large for JSON tools. Written when
the run ends (a resumed run rewrites it from the whole ledger), streamed in blocks: memory stays bounded. A field that
maps names to numbers (a detector's counts, a segmenter's class fractions) becomes a list of {key, value}."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from mobilenetv2.extras import require
from mobilenetv2.inference.stream.resume import LEDGER, ledger_records
from mobilenetv2.inference.stream.sinks.base import Item, Sink
from mobilenetv2.io import atomic_path

NAME, BLOCK = "predictions.parquet", 8192


def columnar(record: dict[str, Any]) -> dict[str, Any]:
    return {k: [{"key": n, "value": v} for n, v in value.items()] if isinstance(value, dict) else value
            for k, value in record.items()}


def blocks(path: Path) -> Iterator[list[dict[str, Any]]]:
    records = ledger_records(path)
    while block := [columnar(r) for r in itertools.islice(records, BLOCK)]:
        yield block


def write_parquet(ledger: Path, out: Path) -> int:
    """``ledger`` (JSON lines) -> ``out`` (Parquet), atomically; two streamed passes: the schema, then the rows."""
    pa = require("pyarrow", "stream")
    pq = require("pyarrow.parquet", "stream")
    schemas = [pa.Table.from_pylist(block).schema for block in blocks(ledger)]
    if not schemas:
        return 0
    schema = pa.unify_schemas(schemas, promote_options="permissive")
    rows = 0
    with atomic_path(out) as tmp, pq.ParquetWriter(tmp, schema) as writer:
        for block in blocks(ledger):
            writer.write_table(pa.Table.from_pylist(block, schema=schema))
            rows += len(block)
    return rows


class ParquetSink(Sink):
    def __init__(self, out: Path) -> None:
        require("pyarrow", "stream")
        self.out = out

    def write(self, batch: list[Item]) -> None:
        pass  # the ledger holds every record; close() turns it into Parquet

    def close(self) -> None:
        if (self.out / LEDGER).is_file():
            write_parquet(self.out / LEDGER, self.out / NAME)
