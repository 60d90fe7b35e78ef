"""``predictions.jsonl``: one line per image, appended and flushed batch by batch (a crash loses at most the batch in
flight). It is the ledger a resumed run reads."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from mobilenetv2.inference.stream.resume import LEDGER, cut_partial_line
from mobilenetv2.inference.stream.sinks.base import Item, Sink, image_results

FSYNC_EVERY_S = 5.0  # flushed every batch (a killed process loses nothing written); on disk every few seconds


class JsonlSink(Sink):
    def __init__(self, out: Path) -> None:
        self.path = out / LEDGER
        if self.path.is_file():
            cut_partial_line(self.path)
        self.file = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - open for the whole run
        self.synced = time.monotonic()

    def write(self, batch: list[Item]) -> None:
        lines = "".join(json.dumps(r.record()) + "\n" for r in image_results(batch))
        if lines:
            self.file.write(lines)
            self.file.flush()
            if time.monotonic() - self.synced > FSYNC_EVERY_S:
                os.fsync(self.file.fileno())
                self.synced = time.monotonic()

    def close(self) -> None:
        if not self.file.closed:
            self.file.flush()
            os.fsync(self.file.fileno())
            self.file.close()
