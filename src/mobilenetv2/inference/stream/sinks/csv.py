"""``predictions.csv``: the presenter's rows of each image (top-k labels, boxes, class fractions), appended batch by batch,
written before the ledger's line so that a resumed run can cut rows of a batch the ledger never got."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mobilenetv2.inference.stream.sinks.base import Item, Sink, image_results
from mobilenetv2.io import atomic_path

if TYPE_CHECKING:
    from mobilenetv2.tasks import Presenter

NAME = "predictions.csv"


def trim_to(path: Path, done: Any) -> None:
    """Keep the rows of images the ledger holds (``done``): the rows after them belong to a batch it never got. A
    repeated header, or an image's rows repeated after another's (two runs at once, before runs took a lock), go."""
    with (open(path, newline="", encoding="utf-8") as f, atomic_path(path) as tmp,
          open(tmp, "w", newline="", encoding="utf-8") as out):
        header = f.readline()
        out.write(header)
        keep, position, finished, current = len(header.encode()), len(header.encode()), set(), None
        for line in iter(f.readline, ""):
            image = next(csv.reader([line]), [None])[0]
            if line == header or image != current:
                finished.add(current)
                current = None if line == header or image in finished else image
            if current is None:
                continue
            out.write(line)
            position += len(line.encode())
            if image in done:
                keep = position
        out.truncate(keep)


class CsvSink(Sink):
    def __init__(self, out: Path, presenter: Presenter, done: Any) -> None:
        self.path, self.presenter = out / NAME, presenter
        exists = self.path.is_file() and self.path.stat().st_size > 0
        if exists:
            trim_to(self.path, done)
            with open(self.path, newline="", encoding="utf-8") as f:
                self.fields: list[str] | None = next(csv.reader(f), None)
        else:
            self.fields = None
        self.file = open(self.path, "a", newline="", encoding="utf-8")  # noqa: SIM115 - open for the whole run

    def write(self, batch: list[Item]) -> None:
        rows = [row for r in image_results(batch) for row in self.presenter.rows(r.prediction)]
        if not rows:
            return
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=self.fields or list(rows[0]), lineterminator="\n", extrasaction="ignore")
        if self.fields is None:
            writer.writeheader()
            self.fields = list(rows[0])
        writer.writerows(rows)
        self.file.write(buffer.getvalue())
        self.file.flush()

    def close(self) -> None:
        self.file.close()
