"""Figures of a video or a live stream: frames predicted, frames a second, frames dropped, end-to-end latency (p50,
p99) and, for a detector, the number of distinct objects tracked."""

from __future__ import annotations

import time
from collections import deque
from typing import Any

import numpy as np

from mobilenetv2.inference.stream.frames import Result, SourceEnd

LATENCIES_KEPT = 10_000  # the percentiles of a long stream are those of its latest frames


class SourceStats:
    """``started``: when the source began giving frames (time.perf_counter()), the start of its frames/s."""

    def __init__(self, started: float | None = None) -> None:
        self.frames = 0
        self.started = started
        self.latencies: deque[float] = deque(maxlen=LATENCIES_KEPT)

    def add(self, result: Result) -> None:
        self.started = self.started or result.frame.arrived or time.perf_counter()
        self.frames += 1
        if "latency_ms" in result.extra:
            self.latencies.append(result.extra["latency_ms"])

    def summary(self, end: SourceEnd) -> dict[str, Any]:
        seconds = time.perf_counter() - self.started if self.started else 0.0
        info = {"source": end.source, "frames": end.frames,
                "frames_per_s": round(self.frames / seconds, 2) if seconds > 0 else None}
        for name in ("received", "dropped", "distinct_objects", "fps", "frames_in_file"):
            if end.info.get(name) is not None:
                info[name] = end.info[name]
        if self.latencies:
            info["latency_ms_p50"], info["latency_ms_p99"] = (round(float(v), 2) for v in
                                                               np.percentile(list(self.latencies), [50, 99]))
        return info


def describe(summary: dict[str, Any]) -> str:
    """One line: "video.mp4: 300 frames, 41.2 frames/s, 7 distinct objects"."""
    parts = [f"{summary['frames']:,} frames"]
    if summary.get("frames_per_s"):
        parts.append(f"{summary['frames_per_s']:.1f} frames/s")
    if "dropped" in summary:
        parts.append(f"{summary['dropped']:,} of {summary['received']:,} dropped while the model was busy")
    if "latency_ms_p50" in summary:
        parts.append(f"latency p50 {summary['latency_ms_p50']:.0f} ms, p99 {summary['latency_ms_p99']:.0f} ms")
    if "distinct_objects" in summary:
        parts.append(f"{summary['distinct_objects']} distinct objects")
    return f"{summary['source']}: " + ", ".join(parts)
