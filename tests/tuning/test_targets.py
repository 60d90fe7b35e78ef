"""Real device targets on the built-in digits: the candidate measured as deployed, the trained trial quantized like
`quantize` and scored through its runtime, the front's files as `info --tflite` reads them."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from mobilenetv2.training import TrainConfig
from mobilenetv2.tuning import TuneConfig, tune
from mobilenetv2.tuning.targets import Candidate, get_target, measure

pytest.importorskip("tflite_micro")
pytest.importorskip("litert_torch")


def digits_calibration(size: int) -> list:
    from mobilenetv2.export.calibration import calibration
    from mobilenetv2.spec import Preprocessing

    return calibration(["digits"], True, None, Preprocessing(input_size=size), 16)


@pytest.mark.slow
def test_tflm_figures_of_a_candidate_are_those_of_its_file():
    figures = measure(Candidate("mobilenet_v2", 0.35, 32, 10), get_target("tflm"), 1, digits_calibration)
    assert 50 < figures["arena_kib"] < 200 and 300 < figures["flash_kib"] < 1200
    assert figures["size_mb"] * 1e6 == pytest.approx(figures["flash_kib"] * 1024, rel=0.01)  # + files beside it
    assert figures["latency_ms"] > 0 and figures["macs_m"] == pytest.approx(1.2, abs=0.1)


def run(tmp_path, **kw):
    cfg = TuneConfig(space=None, widths=(0.35,), sampler="grid", out=str(tmp_path), plots=False, pick=True, **kw)
    base = TrainConfig(epochs=1, limit_batches=1, batch_size=16, progress=False)
    return tune(cfg, base, log=lambda line: None)


@pytest.mark.slow
def test_tflm_front_files_reproduce_their_arena_and_over_budget_is_not_trained(tmp_path):
    from mobilenetv2.formats import open_runtime

    result = run(tmp_path, resolutions=(32, 48), target="tflm", max_arena_kib=110, objectives=("accuracy", "arena"))
    rows = {r["resolution"]: r for r in csv.DictReader((tmp_path / "front.csv").open())}
    (over,) = [t for t in result.study.trials if t.user_attrs.get("infeasible")]
    assert over.user_attrs["resolution"] == 48 and not (Path(over.user_attrs["run_dir"]) / "best.safetensors").exists()
    assert rows["48"]["state"] == "over budget"
    assert rows["48"]["accuracy"] == "" and rows["32"]["on_front"] == "True"
    files = list((tmp_path / "front").glob("*.tflite"))
    assert len(files) == 1
    assert open_runtime(files[0], "tflm").arena_bytes / 1024 == pytest.approx(float(rows["32"]["arena_kib"]), rel=0.01)
    best = result.study.trials[[t.number for t in result.study.trials if t.user_attrs.get("deployed")][0]]
    assert best.user_attrs["accuracy"] == best.user_attrs["int8_accuracy"]  # the int8 file's, not the fp32 checkpoint's
    assert result.best_params == {"width_mult": 0.35, "input_size": 32}


@pytest.mark.slow
def test_litert_int8_accuracy_is_the_deployed_files(tmp_path):
    result = run(tmp_path, resolutions=(32,), target="litert-int8", objectives=("accuracy", "latency"))
    (trial,) = result.study.trials
    assert trial.user_attrs["deployed"].endswith("model.int8.tflite")
    assert 0 <= trial.user_attrs["int8_accuracy"] <= 1 and trial.values[0] == trial.user_attrs["int8_accuracy"]
    assert trial.values[1] == pytest.approx(trial.user_attrs["latency_ms"], abs=1e-4)  # the table rounds it
