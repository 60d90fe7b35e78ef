"""Live sources: a stream that sends frames faster than the model takes them drops the frames that arrive while the
model is busy (counted), so the latency stays bounded; a stream that drops is reopened a few times, then one line; a
camera that does not exist is one line."""

from __future__ import annotations

import json
import time

import pytest

from mobilenetv2.cli import main
from mobilenetv2.inference.stream import Failure, Result, SourceEnd, predict_stream
from mobilenetv2.inference.stream.sources import LiveStream

pytest.importorskip("av")
pytest.importorskip("trackers")

MODEL_MS = 40  # the model takes this long a batch: the stream sends a frame every 5 ms


def slowed(detector, ms: float = MODEL_MS):
    """The detector, its forward pass (``logits``) made to take ``ms`` (a model slower than the camera)."""
    run = detector.logits

    def slow(batch):
        time.sleep(ms / 1000)
        return run(batch)

    detector.logits = slow
    return detector


def test_a_fast_stream_drops_frames_and_keeps_latency_bounded(mjpeg_server, square_detector):
    url = mjpeg_server(frames=400, fps=200)  # 2 s of frames, 5 ms apart
    source = LiveStream(url, reconnects=0)
    items = list(predict_stream(slowed(square_detector), [source], batch_size=8))
    results = [r for r in items if isinstance(r, Result)]
    end = items[-1]
    assert isinstance(end, SourceEnd)
    summary = end.summary
    assert 10 < len(results) < 200 and summary["frames"] == len(results)
    assert summary["dropped"] > 100 and summary["received"] == summary["dropped"] + len(results)
    assert summary["latency_ms_p99"] < 6 * MODEL_MS + 250  # a frame waits for at most the batch before it
    assert all(len(r.prediction.boxes) == 1 for r in results)  # each frame predicted is whole
    frames = [r.frame.frame for r in results]
    assert frames == sorted(frames) and max(b - a for a, b in zip(frames, frames[1:])) > 1


def test_a_stream_that_drops_is_reopened_then_one_line(mjpeg_server, square_detector):
    url = mjpeg_server(frames=20, fps=100, connections=2)  # 0.2 s of frames, once more after a reconnection, then 503
    source = LiveStream(url, reconnects=2, retry_delay_s=0.05)
    items = list(predict_stream(square_detector, [source]))
    failures = [f for f in items if isinstance(f, Failure)]
    assert len(failures) == 1 and "the stream dropped" in failures[0].message and "2 reconnect attempts" in failures[0].message
    assert "Server returned 5XX" in failures[0].message
    assert items[-1].summary["received"] > 20  # frames came again after the first reconnection


def test_live_stream_from_the_command_line(mjpeg_server, tmp_path, capsys, tiny_checkpoint):
    url = mjpeg_server(frames=300, fps=100)
    out = tmp_path / "live"
    assert main(["predict", str(tiny_checkpoint), url, "--max-frames", "15", "--out", str(out), "--draw"]) == 0
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert line.startswith(url) and "15 frames" in line and "dropped" in line and "latency p50" in line
    (video,) = (out / "videos").glob("*.mp4")
    (frames,) = (out / "videos").glob("*.jsonl")
    assert video.stem == frames.stem and len(frames.read_text().splitlines()) == 16


def test_a_missing_camera_is_one_line(tiny_checkpoint, capsys):
    assert main(["predict", str(tiny_checkpoint), "/dev/video97"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "/dev/video97: no such camera" in err[0]


def test_ctrl_c_on_a_stream_still_reports_its_figures(mjpeg_server, square_detector, tmp_path):
    from mobilenetv2.inference.stream import StreamOptions
    from mobilenetv2.inference.stream.run import Outputs, run_prediction

    run, calls = square_detector.logits, []

    def interrupted(batch):  # the user presses Ctrl-C during the 8th batch
        calls.append(1)
        if len(calls) == 8:
            raise KeyboardInterrupt
        time.sleep(MODEL_MS / 1000)
        return run(batch)

    square_detector.logits = interrupted
    out = tmp_path / "out"
    report = run_prediction(square_detector, [LiveStream(mjpeg_server(frames=400, fps=200), reconnects=0)],
                            StreamOptions(batch_size=8), Outputs(fmt=None, out=out, settings={"model": "square"}))
    assert report.interrupted and report.done >= 7
    (frames,) = (out / "videos").glob("*.jsonl")
    summary = json.loads(frames.read_text().splitlines()[-1])["summary"]
    assert summary["frames"] == report.done and summary["dropped"] > 0 and "latency_ms_p99" in summary
