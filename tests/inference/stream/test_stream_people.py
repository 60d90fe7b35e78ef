"""The imported TF pedestrian detector on a real video: a slow pan across walkers.bmp (two people, as TF finds); each
walker keeps one track ID and the video counts two distinct people."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from mobilenetv2.cli import main

av = pytest.importorskip("av")
pytest.importorskip("trackers")
pytest.importorskip("tensorboard", reason="importing the frozen graph needs tensorboard's protobuf classes")

FRAMES, STEP, WINDOW = 24, 7, (480, 420)  # a 480x420 window moving 7 px right a frame: the walkers drift left


@pytest.fixture(scope="module")
def people(shared_data, tmp_path_factory):
    from mobilenetv2.weights import save_checkpoint
    from mobilenetv2.weights.tf_detection import convert_tf_detection

    ckpt = convert_tf_detection(shared_data / "people" / "ssdlite_pedestrians" / "frozen_inference_graph.pb",
                                labels=["background", "person"])
    path = tmp_path_factory.mktemp("people") / "people.safetensors"
    save_checkpoint(path, ckpt.model, meta=ckpt.meta)
    return path


@pytest.fixture(scope="module")
def walkers_pan(shared_data, tmp_path_factory):
    """24 frames at 10 fps (H.264 in mp4) cropped from walkers.bmp, the window sliding right by 7 px a frame."""
    photo = np.asarray(Image.open(shared_data / "people" / "walkers.bmp").convert("RGB"))
    path = tmp_path_factory.mktemp("video") / "walkers_pan.mp4"
    width, height = WINDOW
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for i in range(FRAMES):
            crop = np.ascontiguousarray(photo[40:40 + height, STEP * i:STEP * i + width])
            container.mux(stream.encode(av.VideoFrame.from_ndarray(crop, "rgb24")))
        container.mux(stream.encode(None))
    return path


@pytest.mark.slow
def test_two_walkers_keep_their_track_ids_and_count_two(people, walkers_pan, tmp_path, capsys):
    out = tmp_path / "out"
    capsys.readouterr()
    assert main(["predict", str(people), str(walkers_pan), "--out", str(out)]) == 0
    assert f"{walkers_pan}: {FRAMES} frames" in capsys.readouterr().out
    lines = [json.loads(line) for line in (out / "videos" / "walkers_pan.jsonl").read_text().splitlines()]
    frames, summary = lines[:-1], lines[-1]["summary"]
    assert len(frames) == FRAMES and summary["distinct_objects"] == 2
    right_ids, left_ids, right_x = set(), set(), []
    for frame in frames:
        people = sorted(zip(frame["detections"], frame["track_ids"]), key=lambda d: d[0]["box"][0])
        assert [d["label"] for d, _ in people] == ["person", "person"]  # both walkers in every frame
        left_ids.add(people[0][1])
        right_ids.add(people[1][1])
        right_x.append(people[1][0]["box"][0])
    left_ids.discard(None)  # a track is confirmed on its second frame
    right_ids.discard(None)
    assert len(left_ids) == len(right_ids) == 1 and left_ids != right_ids
    drift = np.diff(right_x)
    assert abs(np.median(drift) + STEP) <= 2  # the boxes follow the pan: 7 px left a frame
