"""``Sink``: where a run's predictions go, batch by batch (JSONL, CSV, Parquet, pictures, annotated videos, stdout)."""

from __future__ import annotations

from abc import ABC, abstractmethod

from mobilenetv2.inference.stream.frames import Failure, Result, SourceEnd

Item = Result | Failure | SourceEnd


class Sink(ABC):
    """Takes each batch of a run in input order (``write``), then ``close`` (also after an error or Ctrl-C: what is
    written stays valid)."""

    @abstractmethod
    def write(self, batch: list[Item]) -> None:
        """One batch: results, failures and ends of sources, in input order."""

    def close(self) -> None:  # noqa: B027 - most have nothing to close
        """Finish the files (a video's container, Parquet)."""


def image_results(batch: list[Item]) -> list[Result]:
    """The results of image files (not frames of a video or stream)."""
    return [r for r in batch if isinstance(r, Result) and not r.frame.video]
