"""Videos and streams: ``videos/NAME.jsonl`` (one line per frame: frame index, time stamp, prediction, track IDs; a
summary line last) and, with ``--draw``, ``videos/NAME.mp4``, the frames with their predictions drawn (H.264 through
PyAV), which takes its name when the video ends (a crash leaves no half file). A video whose JSONL ends with its
summary is done: a resumed run skips it; one without is predicted again."""

from __future__ import annotations

import json
import re
import time
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from mobilenetv2.extras import require
from mobilenetv2.inference.stream.frames import Result, SourceEnd
from mobilenetv2.inference.stream.sinks.annotate import annotator
from mobilenetv2.inference.stream.sinks.base import Item, Sink
from mobilenetv2.inference.stream.sources import Source

FOLDER = "videos"


def output_names(sources: list[Source]) -> dict[str, str]:
    """Source -> the stem of its outputs: the file's stem (numbered when two share it), a stream's address made safe
    with the time it started (a stream never resumes: each run is new)."""
    names: dict[str, str] = {}
    for source in (s for s in sources if s.video):
        stem = (re.sub(r"[^A-Za-z0-9._-]+", "_", source.name.split("://")[-1]).strip("_") + time.strftime("-%Y%m%d-%H%M%S")
                if source.live else Path(source.name).stem)
        name, n = stem, 1
        while name in names.values():
            n += 1
            name = f"{stem}-{n}"
        names[source.name] = name
    return names


class Writer:
    """One annotated video: frames in, H.264 (yuv420p) out, at the source's frame rate over the stride."""

    def __init__(self, path: Path, fps: float) -> None:
        av = require("av", "stream")
        self.path, self.tmp = path, path.with_name(f".{path.name}.tmp")
        self.container = av.open(str(self.tmp), "w", format="mp4")
        self.rate = Fraction(fps).limit_denominator(1001)
        self.stream = None
        self.av = av

    def add(self, frame: np.ndarray) -> None:
        frame = frame[: frame.shape[0] // 2 * 2, : frame.shape[1] // 2 * 2]  # yuv420p wants even sides
        if self.stream is None:
            self.stream = self.container.add_stream("libx264", rate=self.rate)
            self.stream.width, self.stream.height = frame.shape[1], frame.shape[0]
            self.stream.pix_fmt = "yuv420p"
            self.stream.options = {"preset": "veryfast", "crf": "23"}
        self.container.mux(self.stream.encode(self.av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), "rgb24")))

    def close(self, keep: bool = True) -> None:
        if self.stream is not None:
            self.container.mux(self.stream.encode(None))
        self.container.close()
        if keep and self.stream is not None:
            self.tmp.replace(self.path)
        else:
            self.tmp.unlink(missing_ok=True)


class VideoSink(Sink):
    """Per video or stream: its frames' JSONL, its summary, and (``draw``) its annotated video."""

    def __init__(self, out: Path, sources: list[Source], task_name: str, draw: bool, vid_stride: int = 1) -> None:
        self.folder, self.draw, self.stride = out / FOLDER, draw, vid_stride
        self.names = output_names(sources)
        self.sources = {s.name: s for s in sources}
        self.annotate = annotator(task_name) if draw else None
        self.files: dict[str, Any] = {}
        self.writers: dict[str, Writer] = {}
        self.frames: dict[str, int] = {}

    def finished(self, source: str) -> bool:
        """Whether an earlier run predicted this video to its end (its JSONL ends with its summary)."""
        path = self.folder / f"{self.names.get(source, '')}.jsonl"
        if source not in self.names or not path.is_file():
            return False
        with open(path, "rb") as f:
            lines = f.read().splitlines()
        return bool(lines) and json.loads(lines[-1]).get("summary", {}).get("source") == source

    def write(self, batch: list[Item]) -> None:
        touched = set()
        for item in batch:
            if isinstance(item, Result) and item.frame.video:
                self.add(item)
                touched.add(item.frame.source)
            elif isinstance(item, SourceEnd) and item.source in self.names:
                self.end(item)
        for source in touched & set(self.files):
            self.files[source].flush()

    def add(self, result: Result) -> None:
        source = result.frame.source
        if source not in self.files:
            self.folder.mkdir(parents=True, exist_ok=True)
            path = self.folder / f"{self.names[source]}.jsonl"
            self.files[source] = open(path, "w", encoding="utf-8")  # noqa: SIM115 - open until the video ends
            self.frames[source] = 0
        self.files[source].write(json.dumps(result.record()) + "\n")
        self.frames[source] += 1
        if self.draw:
            if source not in self.writers:
                fps = (self.sources[source].fps or 30.0) / self.stride
                self.writers[source] = Writer(self.folder / f"{self.names[source]}.mp4", fps)
            self.writers[source].add(self.annotate(result.frame.picture, result))

    def end(self, end: SourceEnd) -> dict[str, Any] | None:
        """Close a video's files; its summary line last (what marks it done)."""
        if end.source not in self.files:
            return None
        self.frames.pop(end.source, None)
        summary = dict(end.summary or {"source": end.source, "frames": end.frames})
        writer = self.writers.pop(end.source, None)
        if writer is not None:
            writer.close()
            summary["video"] = str(writer.path)
        file = self.files.pop(end.source)
        file.write(json.dumps({"summary": summary}) + "\n")
        file.close()
        return summary

    def close(self) -> None:
        """A stream stopped by the user (Ctrl-C, --max-frames) keeps its video and summary; a video file cut short
        keeps its frames' lines but no summary and no video: a resumed run predicts it again."""
        for source in list(self.files):
            if self.sources[source].live:
                self.end(SourceEnd(source, self.frames[source], self.sources[source].stats()))
        for writer in self.writers.values():
            writer.close(keep=False)
        for file in self.files.values():
            file.close()
