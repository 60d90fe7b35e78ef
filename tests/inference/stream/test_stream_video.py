"""Videos through the prediction pipeline: every frame (or every Nth), one JSONL line per frame with its index and
time stamp, track IDs that follow a moving object, an annotated video, and damaged files kept up to the damage."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest

from mobilenetv2.cli import main
from mobilenetv2.errors import UserError
from mobilenetv2.inference.stream import Failure, Result, SourceEnd, predict_stream
from mobilenetv2.inference.stream.pipeline import StreamOptions
from mobilenetv2.inference.stream.run import Outputs, run_prediction
from mobilenetv2.inference.stream.sources import open_sources

av = pytest.importorskip("av")
pytest.importorskip("trackers")


def test_a_moving_square_keeps_its_track_id(square_video, square_detector):
    items = list(predict_stream(square_detector, str(square_video), batch_size=8))
    results = [r for r in items if isinstance(r, Result)]
    assert [r.frame.frame for r in results] == list(range(40))
    assert results[3].frame.time == pytest.approx(3 / 25, abs=1e-3)
    for i, r in enumerate(results):  # the box found in the frame's own pixels (160x120), where the square was drawn
        (x0, y0, x1, y1), = r.prediction.boxes
        assert abs(x0 - (8 + 3 * i)) <= 3 and abs(y0 - 44) <= 3 and abs(x1 - x0 - 32) <= 4
    ids = [r.extra["track_ids"][0] for r in results]
    assert ids[0] is None  # a track is confirmed on its second frame
    assert len(set(ids[1:])) == 1 and ids[1] is not None
    end = items[-1]
    assert isinstance(end, SourceEnd) and end.summary["distinct_objects"] == 1 and end.summary["frames"] == 40


def test_video_outputs_per_frame_jsonl_and_an_annotated_video(square_video, square_detector, tmp_path):
    out = tmp_path / "out"
    outputs = Outputs(fmt=None, out=out, draw=True, settings={"model": "square"})
    report = run_prediction(square_detector, open_sources([str(square_video)]), StreamOptions(batch_size=4, vid_stride=2),
                            outputs)
    assert report.done == 20 and report.failed == 0
    lines = [json.loads(line) for line in (out / "videos" / "square.jsonl").read_text().splitlines()]
    frames, summary = lines[:-1], lines[-1]["summary"]
    assert [f["frame"] for f in frames] == list(range(0, 40, 2))
    assert frames[5]["time"] == pytest.approx(10 / 25, abs=1e-3) and frames[5]["detections"][0]["label"] == "square"
    assert summary["distinct_objects"] == 1 and summary["frames"] == 20
    with av.open(str(out / "videos" / "square.mp4")) as container:
        decoded = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert len(decoded) == 20 and decoded[0].shape == (120, 160, 3)
    red, blue = decoded[5][..., 0].astype(int), decoded[5][..., 2].astype(int)
    assert (np.abs(blue - red) > 100).sum() > 200  # the box and its "#0 square 1.00" label, coloured on a grey frame
    # run again: the video is done, nothing is predicted twice
    again = run_prediction(square_detector, open_sources([str(square_video)]), StreamOptions(batch_size=4, vid_stride=2),
                           outputs)
    assert again.done == 0 and len((out / "videos" / "square.jsonl").read_text().splitlines()) == 21


@pytest.mark.parametrize("suffix", [".mkv", ".webm"])
def test_a_truncated_video_keeps_the_frames_before_the_damage(square_detector, make_square_video, tmp_path, suffix):
    path = make_square_video(tmp_path / f"cut{suffix}", 60, codec="libx264" if suffix == ".mkv" else "libvpx-vp9")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    items = list(predict_stream(square_detector, str(path), batch_size=8))
    results = [r for r in items if isinstance(r, Result)]
    failures = [f for f in items if isinstance(f, Failure)]
    assert 5 < len(results) < 60
    assert len(failures) == 1 and "cut" in failures[0].message and "kept" in failures[0].message


def test_cli_video_classifier_top_label_per_frame(square_video, tmp_path, capsys):
    from mobilenetv2.models import create_model
    from mobilenetv2.spec import Preprocessing
    from mobilenetv2.weights import save_checkpoint

    ckpt = save_checkpoint(tmp_path / "c.safetensors", create_model("mobilenet_v2", width_mult=0.35, num_classes=2),
                           ["left", "right"], Preprocessing(input_size=32))
    out = tmp_path / "out"
    assert main(["predict", str(ckpt), str(square_video), "--format", "jsonl", "--top-k", "1", "--out", str(out),
                 "--draw", "--vid-stride", "4"]) == 0
    printed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [p["frame"] for p in printed] == list(range(0, 40, 4)) and all(len(p["labels"]) == 1 for p in printed)
    assert (out / "videos" / "square.mp4").stat().st_size > 0


def test_broken_video_is_one_line(square_detector, tmp_path, capsys):
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 200)
    ckpt_free = list(predict_stream(square_detector, str(junk)))
    assert isinstance(ckpt_free[0], Failure) and "junk.mp4: not a readable video" in ckpt_free[0].message


def test_video_figures_frames_per_s_and_frames_in_file(square_video, square_detector):
    run = square_detector.logits

    def slow(batch):  # a model that takes 0.2 s a batch: 40 frames in one batch cannot run at more than 200 frames/s
        time.sleep(0.2)
        return run(batch)

    square_detector.logits = slow
    (end,) = [i for i in predict_stream(square_detector, str(square_video), batch_size=64) if isinstance(i, SourceEnd)]
    assert end.summary["frames"] == 40 and 0 < end.summary["frames_per_s"] <= 200
    (end,) = [i for i in predict_stream(square_detector, str(square_video), max_frames=10) if isinstance(i, SourceEnd)]
    assert end.summary["frames"] == 10 and end.summary["frames_in_file"] == 40  # the file's frames, not those read


def test_cli_video_without_a_declared_frame_count(make_square_video, tiny_checkpoint, tmp_path, capsys):
    mkv = make_square_video(tmp_path / "square.mkv", 12)  # Matroska declares no frame count
    with av.open(str(mkv)) as container:
        assert not container.streams.video[0].frames
    assert main(["predict", str(tiny_checkpoint), str(mkv), "--format", "jsonl"]) == 0
    assert [json.loads(line)["frame"] for line in capsys.readouterr().out.splitlines()] == list(range(12))


def test_a_glob_of_videos_gives_each_video(make_square_video, square_detector, tmp_path):
    for name in ("b.mp4", "a.mp4"):
        make_square_video(tmp_path / name, 6)
    ends = [i.source for i in predict_stream(square_detector, str(tmp_path / "*.mp4")) if isinstance(i, SourceEnd)]
    assert ends == [str(tmp_path / "a.mp4"), str(tmp_path / "b.mp4")]
    with pytest.raises(UserError, match="no video matches"):
        predict_stream(square_detector, str(tmp_path / "*.mkv"))
