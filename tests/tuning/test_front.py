"""Device targets of `tune`: budgets, the front, the measurement cache and resume, with stand-ins for training and
measuring (the real targets are exercised in test_targets.py)."""

from __future__ import annotations

import csv

import optuna
import pytest

from mobilenetv2.cli.tune import TARGET_NAMES
from mobilenetv2.errors import UserError
from mobilenetv2.training import TrainConfig
from mobilenetv2.tuning import TuneConfig, tune
from mobilenetv2.tuning import device as device_module
from mobilenetv2.tuning.front import Budgets, dominates, front_indices
from mobilenetv2.tuning.targets import TARGETS, Candidate, MeasurementCache, cache_key, get_target


def test_front_keeps_exactly_the_undominated_points():
    points = [[0.9, 100], [0.8, 50], [0.85, 120], [0.8, 60], [0.95, 200], [0.9, 100]]
    assert front_indices(points) == [0, 1, 4, 5]  # equal points do not dominate each other
    assert dominates([0.9, 10, 5], [0.9, 10, 6]) and not dominates([0.9, 10, 5], [0.9, 10, 5])
    assert not dominates([0.95, 11], [0.9, 10])


def test_budgets_name_what_is_exceeded_and_need_a_target_that_measures_them():
    budgets = Budgets(max_latency_ms=5, max_arena_kib=64)
    assert budgets.over({"latency_ms": 4.0, "arena_kib": 100.25}) == ["arena_kib 100.2 > 64"]
    assert budgets.over({"latency_ms": 5.0, "arena_kib": 64.0}) == []
    with pytest.raises(UserError, match="--max-arena-kib needs --target tflm"):
        budgets.check("litert-int8")
    with pytest.raises(UserError, match="must be > 0"):
        Budgets(max_size_mb=0).check("litert-int8")


def test_cache_key_follows_candidate_target_and_threads():
    a = Candidate("mobilenet_v2", 0.35, 32, 10)
    tflm, litert = get_target("tflm"), get_target("litert-int8")
    assert cache_key(a, tflm, 1) == cache_key(Candidate("mobilenet_v2", 0.35, 32, 10), tflm, 1)
    changed = [Candidate("mobilenet_v2", 0.5, 32, 10), Candidate("mobilenet_v2", 0.35, 48, 10),
               Candidate("mobilenet_v2", 0.35, 32, 2)]
    others = [*(cache_key(c, tflm, 1) for c in changed), cache_key(a, litert, 1), cache_key(a, tflm, 2)]
    assert len({cache_key(a, tflm, 1), *others}) == 6


def test_cache_survives_a_reopen(tmp_path):
    MeasurementCache(tmp_path / "m.json").put("k", {"latency_ms": 1.5})
    assert MeasurementCache(tmp_path / "m.json").get("k") == {"latency_ms": 1.5}
    assert MeasurementCache(tmp_path / "none.json").get("k") is None


def test_cli_lists_every_target_and_unknown_is_one_line():
    assert tuple(TARGETS) == TARGET_NAMES
    with pytest.raises(UserError, match="unknown --target 'esp32'"):
        get_target("esp32")


def fake_figures(candidate, target, threads, calib):
    """Costs that grow with width and resolution, like the real ones."""
    scale = candidate.width * candidate.resolution
    return {"latency_ms": scale / 10, "size_mb": candidate.width, "arena_kib": scale * 2, "flash_kib": candidate.width * 900,
            "macs_m": scale, "params_m": candidate.width}


class FakeFit:
    """Stands in for training: a made-up accuracy, higher for wider and larger models, never for two the same."""

    def __init__(self):
        self.trained = []

    def __call__(self, trial: optuna.Trial, cfg: TrainConfig, metric: str) -> float:
        self.trained.append((cfg.width_mult, cfg.input_size))
        trial.set_user_attr("val_acc", 0.5 + cfg.width_mult / 4 + cfg.input_size / 1000)
        return trial.user_attrs["val_acc"]


@pytest.fixture
def measured(monkeypatch):
    calls = []

    def measure(candidate, target, threads, calib):
        calls.append((candidate.width, candidate.resolution))
        return fake_figures(candidate, target, threads, calib)

    monkeypatch.setattr(device_module, "measure", measure)
    return calls


def search(tmp_path, fit, **kw):
    kw = {"target": "tflm", **kw}
    cfg = TuneConfig(space=None, widths=(0.35, 0.5, 1.0), resolutions=(32, 48), sampler="grid",
                     out=str(tmp_path / "out"), plots=False, **kw)
    return tune(cfg, TrainConfig(epochs=1), fit=fit, log=lambda line: None)


def front_rows(tmp_path):
    return list(csv.DictReader((tmp_path / "out" / "front.csv").open()))


@pytest.mark.slow
def test_over_budget_never_trains_and_the_front_is_undominated(tmp_path, measured):
    fit = FakeFit()
    result = search(tmp_path, fit, max_arena_kib=40, objectives=("accuracy", "arena"), pick=True)
    assert sorted(measured) == sorted(set(measured)) and len(measured) == 6  # each candidate once, before training
    assert sorted(fit.trained) == [(0.35, 32), (0.35, 48), (0.5, 32)]  # arena = 2 * width * px <= 40
    rows = front_rows(tmp_path)
    assert {r["state"] for r in rows if r["accuracy"] == ""} == {"over budget"} and len(rows) == 6
    front = {(r["width"], r["resolution"]) for r in rows if r["on_front"] == "True"}
    assert front == {("0.35", "32"), ("0.5", "32")}  # 0.35 at 48 px: less accurate than 0.5 at 32 and larger
    assert result.best_params == {"width_mult": 0.5, "input_size": 32}  # the pick: the most accurate within budget
    assert (tmp_path / "out" / "front.md").read_text().startswith("# tflm: accuracy vs arena")


@pytest.mark.slow
def test_resume_measures_nothing_again(tmp_path, measured):
    before, after = FakeFit(), FakeFit()
    search(tmp_path, before, max_arena_kib=40, trials=2, objectives=("accuracy", "arena"))
    first = list(measured)
    search(tmp_path, after, max_arena_kib=40, objectives=("accuracy", "arena"))
    assert measured == first and len(first) == 6  # the cache in OUT/measurements.json
    assert sorted(before.trained + after.trained) == [(0.35, 32), (0.35, 48), (0.5, 32)]  # none twice
    assert len(front_rows(tmp_path)) == 6


def test_no_candidate_within_budget_is_one_line_naming_the_smallest(tmp_path, measured):
    fit = FakeFit()
    with pytest.raises(UserError, match=r"no candidate meets the budgets on tflm: the smallest \(width 0.35, 32 px\) "
                                        r"has .*arena_kib 22.4.*\(arena_kib 22.4 > 16\)"):
        search(tmp_path, fit, max_arena_kib=16)
    assert fit.trained == []


@pytest.mark.parametrize("options, message", [
    ({"objectives": ("latency", "accuracy")}, "--objectives starts with accuracy"),
    ({"objectives": ("accuracy", "power")}, "unknown objective 'power'"),
    ({"target": "litert-int8", "objectives": ("accuracy", "arena")}, "objective arena needs --target tflm"),
    ({"target": None, "max_arena_kib": 64.0}, "need a --target"),
    ({"target": None, "pick": True}, "--pick chooses among the models measured on a device"),
])
def test_bad_target_options(tmp_path, options, message):
    with pytest.raises(UserError, match=message):
        search(tmp_path, FakeFit(), **options)


@pytest.mark.slow
def test_width_specific_pretrained(tmp_path, measured):
    ckpt = tmp_path / "w05.safetensors"
    ckpt.write_bytes(b"x")
    (tmp_path / "map.yaml").write_text(f"0.5: {ckpt}\n")
    seen = {}

    def fit(trial, cfg, metric):
        seen[cfg.width_mult] = cfg.pretrained
        return 0.5

    search(tmp_path, fit, pretrained_map=str(tmp_path / "map.yaml"))
    assert seen == {0.35: None, 0.5: str(ckpt), 1.0: None}
    (tmp_path / "bad.yaml").write_text("0.5: nowhere.safetensors\n")
    with pytest.raises(UserError, match="no such checkpoint 'nowhere.safetensors'"):
        search(tmp_path, fit, pretrained_map=str(tmp_path / "bad.yaml"))


def test_pick_is_the_most_accurate_and_the_smaller_on_a_tie():
    from types import SimpleNamespace

    from mobilenetv2.tuning.front import pick

    def trial(number, state, accuracy, macs):
        return SimpleNamespace(number=number, state=SimpleNamespace(name=state),
                               user_attrs={"accuracy": accuracy, "macs_m": macs})

    trials = [trial(0, "COMPLETE", 0.9, 5.0), trial(1, "COMPLETE", 0.9, 2.0), trial(2, "PRUNED", None, 1.0),
              trial(3, "COMPLETE", 0.8, 1.0)]
    assert pick(trials).number == 1
    assert pick([trials[2]]) is None


def test_missing_extra_of_a_target_is_the_usual_line(monkeypatch):
    import mobilenetv2.extras as extras

    real = extras.available
    monkeypatch.setattr(extras, "available", lambda module: module != "tflite_micro" and real(module))
    with pytest.raises(UserError, match=r"tflite_micro is not installed.*pip install 'mobilenetv2\[mobile\]'"):
        get_target("tflm").require()


def test_cli_bad_budget_is_one_line(tmp_path, capsys):
    from mobilenetv2.cli import main

    argv = ["tune", "--widths", "0.35", "0.5", "--resolutions", "32", "--target", "litert-int8", "--max-arena-kib", "64",
            "--out", str(tmp_path / "t")]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].endswith("--max-arena-kib needs --target tflm (the arena and flash are TensorFlow Lite Micro's)")
