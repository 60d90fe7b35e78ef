"""The same predictor on Ray Data: images read as a Ray dataset, an actor pool of predictors, results written as
``predict`` writes them; on a local Ray instance (2 CPUs, a small object store) the predictions are identical to the
one-machine run's, and a rerun resumes."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from mobilenetv2.cli import main

ray = pytest.importorskip("ray")
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def local_ray():
    ray.init(address="local", num_cpus=2, object_store_memory=80 * 1024 * 1024, include_dashboard=False, log_to_driver=False,
             configure_logging=False)
    yield
    ray.shutdown()


def test_ray_gives_the_one_machine_predictions(local_ray, tiny_checkpoint, tmp_path, capsys, caplog):
    folder = tmp_path / "images"
    (folder / "sub").mkdir(parents=True)
    rng = np.random.default_rng(3)
    for i in range(14):
        name = f"sub/{i:02d}.jpg" if i > 11 else f"{i:02d}.{'jpg' if i % 3 else 'png'}"
        Image.fromarray(rng.integers(0, 256, (60 + 9 * i, 90, 3), dtype=np.uint8)).save(folder / name)
    (folder / "broken.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    here, there = tmp_path / "here", tmp_path / "there"
    assert main(["predict", str(tiny_checkpoint), str(folder), "--out", str(here), "--format", "csv", "--batch-size", "4"]) == 1
    assert main(["predict", str(tiny_checkpoint), str(folder), "--out", str(there), "--format", "csv", "--batch-size", "4",
                 "--ray", "--ray-actors", "2"]) == 1
    out, err = capsys.readouterr()
    assert err.count("broken.jpg: not a readable image") == 2
    one = [json.loads(line) for line in (here / "predictions.jsonl").read_text().splitlines()]
    many = [json.loads(line) for line in (there / "predictions.jsonl").read_text().splitlines()]
    assert len(one) == 14 and many == one
    assert (there / "predictions.csv").read_text() == (here / "predictions.csv").read_text()
    # a rerun on Ray resumes: nothing new is predicted, the broken file is tried again
    assert main(["predict", str(tiny_checkpoint), str(folder), "--out", str(there), "--format", "jsonl", "--ray"]) == 1
    assert capsys.readouterr().out == "" and len((there / "predictions.jsonl").read_text().splitlines()) == 14
    assert "resuming: 14 of 15 done" in caplog.text


def test_ray_client_addresses_are_one_line(tiny_checkpoint, tmp_path, capsys):
    image = tmp_path / "a.png"
    Image.fromarray(np.zeros((40, 40, 3), dtype=np.uint8)).save(image)
    assert main(["predict", str(tiny_checkpoint), str(image), "--ray", "ray://127.0.0.1:10001"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "Ray Data does not run through Ray Client" in err[0] and "--ray auto" in err[0]


def test_the_model_travels_with_its_companions_and_a_folder_model_is_one_line(tmp_path):
    from mobilenetv2.errors import UserError
    from mobilenetv2.inference.stream.ray_data import model_files

    (tmp_path / "m.xml").write_text("<net/>")
    (tmp_path / "m.bin").write_bytes(b"\0" * 8)
    (tmp_path / "m.int8.tflite").write_bytes(b"TFL3")
    (tmp_path / "m.int8.tflite.json").write_text("{}")
    assert model_files(tmp_path / "m.xml") == ({"m.xml": b"<net/>", "m.bin": b"\0" * 8}, "m.xml")
    assert sorted(model_files(tmp_path / "m.int8.tflite")[0]) == ["m.int8.tflite", "m.int8.tflite.json"]
    (tmp_path / "m.mlpackage").mkdir()
    with pytest.raises(UserError, match="is a folder"):
        model_files(tmp_path / "m.mlpackage")


def test_ray_writes_the_segmentation_masks_as_one_machine_does(local_ray, tmp_path, capsys):
    from mobilenetv2.data import Preprocessing
    from mobilenetv2.models import create_model
    from mobilenetv2.weights import save_checkpoint

    seg = save_checkpoint(tmp_path / "seg.safetensors", create_model("lraspp_mobilenet_v2", width_mult=0.35, num_classes=3),
                          ["background", "a", "b"], Preprocessing(input_size=32, crop_pct=1.0, resize_mode="squash"),
                          task="segmentation")
    folder = tmp_path / "images"
    folder.mkdir()
    rng = np.random.default_rng(5)
    for i in range(5):
        Image.fromarray(rng.integers(0, 256, (30 + 4 * i, 40, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    here, there = tmp_path / "here", tmp_path / "there"
    assert main(["predict", str(seg), str(folder), "--out", str(here), "--format", "jsonl", "--batch-size", "2"]) == 0
    assert main(["predict", str(seg), str(folder), "--out", str(there), "--format", "jsonl", "--batch-size", "2",
                 "--ray"]) == 0
    capsys.readouterr()
    masks = sorted(p.name for p in here.glob("*_mask.png"))
    assert len(masks) == 5 and sorted(p.name for p in there.glob("*_mask.png")) == masks
    for name in masks:
        assert np.array_equal(np.asarray(Image.open(here / name)), np.asarray(Image.open(there / name))), name
