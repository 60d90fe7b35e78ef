"""`mobilenetv2 compare`: a quick comparison of tiny models, with and without a training budget."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from PIL import Image

from mobilenetv2.cli import main
from mobilenetv2.training import TrainConfig


def test_quick_compare_outputs_consistent(tmp_path, capsys):
    out = tmp_path / "cmp"
    argv = ["compare", "--models", "mobilenet_v2_035", "mobilenet_v3_small@48", "squeezenet1_1", "--resolution", "64",
            "--repeats", "3", "--batch-size", "2", "--threads", "1", "--no-memory", "--out", str(out)]
    assert main(argv) == 0
    stdout = capsys.readouterr().out
    assert "| mobilenet_v3_small@48 | ours" in stdout and "3 interleaved rounds" in stdout
    assert sorted(p.name for p in out.iterdir()) == ["compare.csv", "compare.json", "compare.md", "compare.png"]
    rows = list(csv.DictReader((out / "compare.csv").open()))
    data = json.loads((out / "compare.json").read_text())
    assert [r["name"] for r in rows] == [r["name"] for r in data["rows"]] == ["mobilenet_v2_035", "mobilenet_v3_small@48",
                                                                                "squeezenet1_1"]
    by_name = {r["name"]: r for r in data["rows"]}
    assert by_name["mobilenet_v3_small@48"]["resolution"] == 48 and by_name["squeezenet1_1"]["source"] == "torchvision"
    for r in data["rows"]:
        assert r["latency_p90_ms"] >= r["latency_ms"] > 0 and r["throughput"] > 0 and r["accuracy"] is None
        assert r["size_mb"] == pytest.approx(r["params_m"] * 4, rel=0.05)  # float32 safetensors ~ 4 bytes a parameter
    assert by_name["squeezenet1_1"]["macs_m"] > by_name["mobilenet_v2_035"]["macs_m"]
    fastest = min(data["rows"], key=lambda r: r["latency_ms"])
    assert fastest["pareto"] and data["info"]["pareto_on"] == "MACs"


@pytest.mark.slow
def test_accuracy_after_the_same_budget(tmp_path, capsys):
    data = tmp_path / "data"
    rng = np.random.default_rng(0)
    for c in ("dark", "light"):
        (data / c).mkdir(parents=True)
        for i in range(5):
            Image.fromarray(rng.integers(0, 100, (36, 36, 3), dtype=np.uint8) + (150 if c == "light" else 0)).save(
                data / c / f"{i}.png")
    config = tmp_path / "train.yaml"
    config.write_text("batch_size: 4\nworkers: 0\nval_split: 0.4\nwarmup_epochs: 0\ndevice: cpu\n")
    out = tmp_path / "cmp"
    argv = ["compare", "--models", "mobilenet_v2_035", "squeezenet1_1", "--resolution", "32", "--repeats", "2",
            "--batch-size", "2", "--threads", "1", "--no-memory", "--data", str(data), "--epochs", "1",
            "--train-config", str(config), "--out", str(out)]
    assert main(argv) == 0
    rows = json.loads((out / "compare.json").read_text())["rows"]
    assert all(0.0 <= r["accuracy"] <= 1.0 for r in rows)
    assert (out / "runs" / "mobilenet_v2_035" / "best.safetensors").is_file()
    assert "after 1 epoch(s) of the same training (BatchNorm momentum 0.1 for every model)" in capsys.readouterr().out
    for name in ("mobilenet_v2_035", "squeezenet1_1"):  # squeezenet has no BatchNorm: the option is harmless there
        assert TrainConfig.from_yaml(out / "runs" / name / "config.yaml").bn_momentum == 0.1


@pytest.mark.parametrize("argv, message", [
    (["--models", "resnet_18"], "unknown model 'resnet_18' (did you mean resnet18"),
    (["--models", "mobilenet_v2", "--epochs", "2"], "--epochs needs --data"),
    (["--models", "mobilenet_v2", "--data", "digits"], "--data needs --epochs"),
    (["--models", "mobilenet_v2", "mobilenet_v2"], "duplicates"),
])
def test_bad_input_one_line(argv, message, tmp_path, capsys):
    assert main(["compare", *argv, "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("mobilenetv2 compare: error:") and message in err[-1]
    assert not (tmp_path / "out").exists()
