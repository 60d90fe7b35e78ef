"""Live sources: camera devices (``/dev/video0``) and network streams (``rtsp://``, ``rtmp://``, ``http(s)://``,
``udp://``, ``srt://``) through PyAV. A reader thread decodes every frame as it arrives and keeps only the newest: a
frame that arrives while the model is busy replaces the one waiting and is counted as dropped, so the latency stays
bounded. A stream that drops is reopened ``reconnects`` times before it gives one line."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

from mobilenetv2.errors import UserError
from mobilenetv2.extras import require
from mobilenetv2.inference.stream.frames import Failure, Frame, SourceEnd
from mobilenetv2.inference.stream.sources.base import Context, Item, Source
from mobilenetv2.inference.stream.sources.video import frame_time, reason, to_arrays

STREAM_SCHEMES = ("rtsp://", "rtsps://", "rtmp://", "http://", "https://", "udp://", "tcp://", "srt://")
CAMERA_PREFIX = "/dev/video"
OPEN_TIMEOUT_S, READ_TIMEOUT_S = 10.0, 5.0


def is_live(item: str) -> bool:
    return item.lower().startswith(STREAM_SCHEMES) or item.startswith(CAMERA_PREFIX)


class Mailbox:
    """The newest frame and what became of the others: put() replaces an unread frame (dropped), take() waits."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.item: Frame | None = None
        self.received = self.dropped = 0
        self.closed = False
        self.failure: str | None = None

    def put(self, frame: Frame) -> None:
        with self.cond:
            self.dropped += self.item is not None
            self.received += 1
            self.item = frame
            self.cond.notify()

    def close(self, failure: str | None = None) -> None:
        with self.cond:
            self.closed, self.failure = True, failure
            self.cond.notify_all()

    def take(self) -> Frame | None:
        """The newest frame, or None once the stream has ended and nothing waits."""
        with self.cond:
            while self.item is None and not self.closed:
                self.cond.wait()
            frame, self.item = self.item, None
            return frame


class LiveStream(Source):
    """A camera or network stream; ``frames`` gives the newest frame each time the pipeline asks for one."""

    live = video = True

    def __init__(self, url: str, reconnects: int = 3, retry_delay_s: float = 1.0) -> None:
        self.av = require("av", "stream")
        self.name, self.reconnects, self.retry_delay_s = url, reconnects, retry_delay_s
        self.camera = url.startswith(CAMERA_PREFIX)
        if self.camera and not Path(url).exists():
            raise UserError(f"{url}: no such camera (no device file; cameras: {cameras_present() or 'none found'})")
        self.mailbox = Mailbox()
        self.stop = threading.Event()
        self.reader: threading.Thread | None = None

    def open(self):  # noqa: ANN201 - an av container
        options = {"rtsp_transport": "tcp"} if self.name.startswith(("rtsp://", "rtsps://")) else {}
        return self.av.open(self.name, format="v4l2" if self.camera else None, options=options,
                            timeout=(OPEN_TIMEOUT_S, READ_TIMEOUT_S))

    def frames(self, context: Context) -> Iterator[Item]:
        try:
            container = self.open()
        except (self.av.FFmpegError, OSError) as exc:
            yield Failure(self.name, f"{self.name}: cannot open the {'camera' if self.camera else 'stream'} ({reason(exc)})")
            yield SourceEnd(self.name, 0)
            return
        self.reader = threading.Thread(target=self.read, args=(container, context), daemon=True,
                                       name="mobilenetv2-live-reader")
        self.reader.start()
        done = 0
        while context.max_frames is None or done < context.max_frames:
            frame = self.mailbox.take()
            if frame is None:
                break
            frame.ordinal = context.first_ordinal + done
            yield frame
            done += 1
        self.close()
        if self.mailbox.failure:
            yield Failure(self.name, self.mailbox.failure)
        yield SourceEnd(self.name, done, self.stats())

    def stats(self) -> dict:
        return {"fps": self.fps, "received": self.mailbox.received, "dropped": self.mailbox.dropped}

    def read(self, container, context: Context) -> None:  # noqa: ANN001
        """The reader thread: decode frames as they come; reopen a dropped stream up to ``reconnects`` times in a row."""
        tries, size, index, failure = 0, None, -1, None
        while container is not None and not self.stop.is_set():
            try:
                stream = container.streams.video[0]
                self.fps = float(stream.average_rate) if stream.average_rate else self.fps
                for frame in container.decode(stream):
                    if self.stop.is_set():
                        break
                    tries, index = 0, index + 1
                    if index % context.vid_stride:
                        continue
                    size = size or context.decode_size(frame.width, frame.height)
                    image, picture, original = to_arrays(frame, context, size)
                    self.mailbox.put(Frame(key=f"{self.name}#{index}", source=self.name, ordinal=0, image=image,
                                           picture=picture, original_size=original, frame=index, time=frame_time(frame),
                                           arrived=time.perf_counter()))
                why = "the stream ended"
            except (self.av.FFmpegError, OSError, IndexError) as exc:
                why = reason(exc)
            finally:
                container.close()
            container = None
            while container is None and tries < self.reconnects and not self.stop.is_set():
                tries += 1
                time.sleep(self.retry_delay_s)
                try:
                    container = self.open()
                except (self.av.FFmpegError, OSError) as exc:
                    why = reason(exc)
            if container is None and not self.stop.is_set():
                failure = f"{self.name}: the stream dropped ({why}); {tries} reconnect attempts failed"
        self.mailbox.close(failure)

    def close(self) -> None:
        self.stop.set()
        self.mailbox.close(self.mailbox.failure)


def cameras_present() -> str:
    return ", ".join(sorted(str(p) for p in Path("/dev").glob("video*")))
