"""``Source``: where a run's frames come from (image files, a video, a camera or a network stream), behind one
interface: ``frames(context)`` yields ``Frame``s, ``Failure``s (one line each, the run goes on) and a ``SourceEnd``."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from mobilenetv2.inference.stream.frames import Failure, Frame, SourceEnd

Item = Frame | Failure | SourceEnd


@dataclass
class Context:
    """What a source needs from the run: the size the model wants an image at (``Predictor.decode_size``), whether
    full-size pictures are kept for drawing, every Nth video frame, at most so many frames a video or stream."""

    decode_size: Callable[[int, int], tuple[int, int]]
    pictures: bool = False
    vid_stride: int = 1
    max_frames: int | None = None
    first_ordinal: int = 0  # ordinals of this source's frames start here (pictures are numbered by them)


class Source(ABC):
    """One input of ``predict``: its frames, how many there are (None: unknown or endless), whether it is live."""

    name: str
    live: bool = False   # frames arrive on their own clock and are dropped while the model is busy
    video: bool = False  # the frames of one stream (a summary, an annotated video, tracks)
    fps: float | None = None  # frames a second (videos and streams; known once frames() has opened it)

    def key(self) -> str:
        """What a resumed run recognises this source by (a video done before is skipped whole)."""
        return self.name

    def count(self) -> int | None:
        """How many frames this source gives (None: not known in advance)."""
        return None

    @abstractmethod
    def frames(self, context: Context) -> Iterator[Item]:
        """The frames, in order; problems as ``Failure``s; a ``SourceEnd`` last."""

    def close(self) -> None:  # noqa: B027 - most have nothing to close
        """Stop reading (a live source's reader thread); safe to call twice."""
