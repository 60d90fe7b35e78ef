"""Progress of a run: a bar with images/s and the ETA on a terminal (``mobilenetv2.console.progress``), and one
log line every ``interval`` seconds otherwise (CI, ``| tee``, ``nohup``)."""

from __future__ import annotations

import logging
import time

from mobilenetv2.console import progress, progress_enabled
from mobilenetv2.inference.stream.frames import Failure, Result

log = logging.getLogger("mobilenetv2.predict")


def duration(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m" if seconds >= 3600 else \
        f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


class Progress:
    """Counts what a run has done; ``total``: what it has to do (None: unknown, e.g. a live stream)."""

    def __init__(self, total: int | None, unit: str = "images", interval: float = 10.0) -> None:
        self.total, self.unit, self.interval = total, unit, interval
        self.done = self.failed = 0
        self.started = self.logged = time.perf_counter()
        self.bar = progress(total=total, desc="predict", unit=unit[:-1] if unit.endswith("s") else unit) \
            if progress_enabled() else None

    def update(self, batch: list) -> None:
        done = sum(isinstance(item, Result) for item in batch)
        self.done += done
        self.failed += sum(isinstance(item, Failure) for item in batch)
        if self.bar is not None:
            self.bar.update(done)
        elif time.perf_counter() - self.logged >= self.interval:
            self.logged = time.perf_counter()
            log.info("predict: %s", self.line())

    def rate(self) -> float:
        elapsed = time.perf_counter() - self.started
        return self.done / elapsed if elapsed > 0 else 0.0

    def line(self) -> str:
        rate = self.rate()
        done = f"{self.done:,}/{self.total:,} {self.unit}" if self.total else self.count(self.done)
        text = f"{done}, {rate:,.1f} {self.unit}/s"
        if self.total and rate > 0:
            text += f", ETA {duration(max(0, self.total - self.done) / rate)}"
        return text + (f", {self.failed:,} failed" if self.failed else "")

    def count(self, n: int) -> str:
        """``n`` with the unit, singular for one ("1 image", "2 images")."""
        return f"{n:,} {self.unit[:-1] if n == 1 and self.unit.endswith('s') else self.unit}"

    def close(self) -> str:
        """The closing line: what was done, how fast, and how many inputs could not be read (the run's one summary)."""
        if self.bar is not None:
            self.bar.close()
        elapsed = time.perf_counter() - self.started
        text = f"{self.count(self.done)} in {duration(elapsed) if elapsed >= 1 else f'{elapsed:.2f}s'} " \
               f"({self.rate():,.1f} {self.unit}/s)"
        if self.failed:
            what = "files" if self.unit == "images" else "inputs"
            text += f", {self.failed:,} of {self.done + self.failed:,} {what} could not be read"
        return text
