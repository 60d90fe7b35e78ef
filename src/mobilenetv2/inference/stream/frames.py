"""What flows through the prediction pipeline: a ``Frame`` (one input: a file, or a frame of a video or a live
stream), a ``Result`` (its prediction) and a ``Failure`` (an input that could not be read: one line, the run goes on)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Frame:
    """One input of a run. Files are decoded in a worker (``read``); video and stream frames come decoded (``image``)."""

    key: str                      # what a resumed run recognises: the path, or "VIDEO#FRAME"
    source: str                   # the file or stream it comes from (the "image" of its record)
    ordinal: int                  # its position among the run's inputs (pictures are numbered by it)
    image: Any = None             # the decoded image (an HWC uint8 array; a PIL image from ``read``)
    read: Callable[[], Any] | None = None  # decodes a file: -> (RGB PIL image, (width, height) at full size)
    original_size: tuple[int, int] | None = None  # (width, height) when ``image`` was decoded smaller
    frame: int | None = None      # the frame's index in its video or stream
    time: float | None = None     # seconds from the start of the video (its presentation time stamp)
    arrived: float | None = None  # time.perf_counter() when a live frame arrived (end-to-end latency)
    picture: Any = None           # the full-size image to draw on (only when a sink draws)

    @property
    def video(self) -> bool:
        return self.frame is not None


@dataclass
class Result:
    """The prediction of one frame (``prediction.source`` is the frame's source)."""

    frame: Frame
    prediction: Any
    extra: dict[str, Any] = field(default_factory=dict)  # what sinks add: track IDs, latency

    def record(self) -> dict[str, Any]:
        """The JSON line of this prediction: the task's record, with the frame index and time stamp of a video frame."""
        record = dict(self.prediction.to_json())
        image = record.pop("image", self.frame.source)
        where = {"image": image}
        if self.frame.video:
            where.update(frame=self.frame.frame, time=None if self.frame.time is None else round(self.frame.time, 4))
        return {**where, **record, **self.extra}


@dataclass
class Failure:
    """An input that could not be read (a broken file, a truncated video, a stream that dropped): one line."""

    source: str
    message: str
    key: str | None = None  # set for a file: a resumed run tries it again


@dataclass
class SourceEnd:
    """A source has given all its frames (a video's summary is written when this passes)."""

    source: str
    frames: int
    info: dict[str, Any] = field(default_factory=dict)  # what the source knows: fps, frames received and dropped
    summary: dict[str, Any] | None = None  # a video's or stream's figures (``stats.SourceStats``), set by the pipeline
