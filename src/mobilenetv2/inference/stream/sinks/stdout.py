"""The predictions on stdout, as ``predict`` has always printed them: a table (in blocks of rows, so that a run of
millions prints as it goes), JSON lines (videos: one per frame) or CSV (images); one summary row per video or stream."""

from __future__ import annotations

import csv
import json
import sys
from typing import TYPE_CHECKING, Any

from mobilenetv2.inference.stream.frames import Result, SourceEnd
from mobilenetv2.inference.stream.sinks.base import Item, Sink, image_results
from mobilenetv2.inference.stream.stats import describe

if TYPE_CHECKING:
    from mobilenetv2.tasks import Presenter

TABLE_ROWS = 1000  # rows held before a block of the table is printed


class StdoutSink(Sink):
    def __init__(self, presenter: Presenter, fmt: str) -> None:
        self.presenter, self.fmt = presenter, fmt
        self.rows: list[dict[str, Any]] = []
        self.csv_fields: list[str] | None = None

    def write(self, batch: list[Item]) -> None:
        for item in batch:
            if isinstance(item, Result) and item.frame.video and self.fmt == "jsonl":
                print(json.dumps(item.record()))
            elif isinstance(item, SourceEnd) and item.summary is not None and self.fmt == "table":
                self.print_table()
                print(describe(item.summary))
        results = image_results(batch)
        if self.fmt == "jsonl":
            for r in results:
                print(json.dumps(r.record()))
        elif self.fmt == "csv":
            self.print_csv([row for r in results for row in self.presenter.rows(r.prediction)])
        else:
            self.rows += [self.presenter.summary(r.prediction) for r in results]
            if len(self.rows) >= TABLE_ROWS:
                self.print_table()
        sys.stdout.flush()

    def print_csv(self, rows: list[dict[str, Any]]) -> None:
        if not rows:
            return
        writer = csv.DictWriter(sys.stdout, fieldnames=self.csv_fields or list(rows[0]), lineterminator="\n",
                                extrasaction="ignore")
        if self.csv_fields is None:
            writer.writeheader()
            self.csv_fields = list(rows[0])
        writer.writerows(rows)

    def print_table(self) -> None:
        from mobilenetv2.reporting import format_table

        if self.rows:
            print(format_table(list(self.rows[0]), [list(r.values()) for r in self.rows]))
            self.rows = []

    def close(self) -> None:
        if self.fmt == "table":
            self.print_table()
        sys.stdout.flush()
