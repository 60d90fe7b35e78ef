"""Video files (mp4, mkv, webm, avi, mov, ...) through PyAV (FFmpeg): every frame, or every Nth; frames are converted
by FFmpeg's scaler straight to the size the model wants unless full-size pictures are drawn. A corrupt or truncated
file gives one line and keeps the frames decoded before the damage."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from mobilenetv2.errors import UserError
from mobilenetv2.extras import require
from mobilenetv2.inference.stream.frames import Failure, Frame, SourceEnd
from mobilenetv2.inference.stream.sources.base import Context, Item, Source

VIDEO_SUFFIXES = (".mp4", ".mkv", ".webm", ".avi", ".mov", ".m4v", ".mpg", ".mpeg", ".ts", ".wmv", ".flv")


def is_video_file(item: str) -> bool:
    return Path(item).suffix.lower() in VIDEO_SUFFIXES


def to_arrays(frame, context: Context, size: tuple[int, int]) -> tuple:  # noqa: ANN001 - an av.VideoFrame
    """(the image for the model, the picture to draw on or None, the frame's full size when the image is smaller)."""
    full = (frame.width, frame.height)
    if context.pictures:
        rgb = frame.to_ndarray(format="rgb24")
        return rgb, rgb, None
    if size == full:
        return frame.to_ndarray(format="rgb24"), None, None
    return frame.to_ndarray(width=size[0], height=size[1], format="rgb24", interpolation="AREA"), None, full


def reason(exc: BaseException) -> str:
    """FFmpeg's message without its errno number and the repeated file name."""
    return getattr(exc, "strerror", None) or str(exc) or type(exc).__name__


def frame_time(frame) -> float | None:  # noqa: ANN001 - an av.VideoFrame
    return None if frame.time is None else float(frame.time)


def shortfall(container, stream, index: int, last_time: float | None) -> str | None:  # noqa: ANN001 - av objects
    """What is missing when a file ends before the frames or duration its header declares (None: nothing)."""
    if stream.frames and index + 1 < stream.frames:
        return f"{index + 1} of {stream.frames} frames could be decoded"
    duration = float(stream.duration * stream.time_base) if stream.duration and stream.time_base else (
        container.duration / 1e6 if container.duration else None)
    rate = float(stream.average_rate) if stream.average_rate else 25.0
    if duration and (last_time or 0.0) + 2.0 / rate < duration - (float(stream.start_time * stream.time_base)
                                                                   if stream.start_time and stream.time_base else 0.0):
        return f"decoded up to {last_time or 0.0:.2f} s of {duration:.2f} s"
    return None


class VideoFile(Source):
    """A video file: decoded with FFmpeg's frame threads, every ``vid_stride``-th frame given to the model."""

    video = True

    def __init__(self, path: str) -> None:
        if not Path(path).is_file():
            raise UserError(f"{path}: no such video file")
        self.name = path
        self.av = require("av", "stream")
        self.declared: int | None = None

    def count(self) -> int | None:
        try:
            with self.av.open(self.name) as container:
                frames = container.streams.video[0].frames if container.streams.video else 0
        except (self.av.FFmpegError, OSError):
            return None
        return frames or None

    def frames(self, context: Context) -> Iterator[Item]:
        av, done = self.av, 0
        try:
            container = av.open(self.name)
        except (av.FFmpegError, OSError) as exc:
            yield Failure(self.name, f"{self.name}: not a readable video ({reason(exc)})")
            yield SourceEnd(self.name, 0)
            return
        with container:
            if not container.streams.video:
                yield Failure(self.name, f"{self.name}: no video stream in this file")
                yield SourceEnd(self.name, 0)
                return
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"  # FFmpeg's frame threads
            self.fps = float(stream.average_rate) if stream.average_rate else None
            self.declared = stream.frames or None
            size, index, last_time, stopped = None, -1, None, False
            try:
                for frame in container.decode(stream):
                    index, last_time = index + 1, frame_time(frame)
                    if index % context.vid_stride:
                        continue
                    if context.max_frames is not None and done >= context.max_frames:
                        stopped = True  # --max-frames: the file goes on
                        break
                    size = size or context.decode_size(frame.width, frame.height)
                    image, picture, original = to_arrays(frame, context, size)
                    yield Frame(key=f"{self.name}#{index}", source=self.name, ordinal=context.first_ordinal + done,
                                image=image, picture=picture, original_size=original, frame=index, time=frame_time(frame))
                    done += 1
            except (av.FFmpegError, OSError) as exc:
                yield Failure(self.name, f"{self.name}: corrupt or truncated video after frame {index} ({reason(exc)}); the "
                                         f"{done} frames decoded before are kept")
            else:
                short = shortfall(container, stream, index, last_time) if context.max_frames is None else None
                if short:
                    yield Failure(self.name, f"{self.name}: truncated video: {short}; the {done} frames predicted "
                                             "are kept")
        yield SourceEnd(self.name, done, {"fps": self.fps, "frames_in_file": self.declared if stopped else index + 1})
