"""Search mechanics with a cheap stand-in for training: samplers, grid coverage, resume, workers, pruning, results."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from mobilenetv2.errors import UserError
from mobilenetv2.training import TrainConfig
from mobilenetv2.tuning import SearchSpace, TuneConfig, tune

GRID = {"lr": [0.01, 0.1, 0.3], "width_mult": [0.35, 0.5]}
RANGE = {"lr": {"type": "float", "low": 1e-3, "high": 1.0, "log": True}, "batch_size": [16, 32, 64]}


def score(cfg: TrainConfig) -> float:
    """A made-up accuracy that peaks at lr = 0.1."""
    return 1.0 - abs(cfg.lr - 0.1)


class Recorder:
    """Stands in for training: records each call, optionally reports epochs (for pruning) or stops the search."""

    def __init__(self, epochs: int = 0, interrupt_at: int | None = None):
        self.calls: list[dict] = []
        self.epochs, self.interrupt_at = epochs, interrupt_at

    def __call__(self, trial: optuna.Trial, cfg: TrainConfig, metric: str) -> float:
        if len(self.calls) == self.interrupt_at:
            raise KeyboardInterrupt
        self.calls.append(dict(trial.params))
        assert Path(cfg.out).name == f"trial_{trial.number:04d}"
        for epoch in range(self.epochs):
            trial.report(score(cfg) * (epoch + 1) / self.epochs, epoch)
            if trial.should_prune():
                raise optuna.TrialPruned()
        return score(cfg)


def run(tmp_path, space, fit, name="out", plots=False, **kw):
    cfg = TuneConfig(space=SearchSpace.from_dict(space), out=str(tmp_path / name), plots=plots, **kw)
    return tune(cfg, TrainConfig(epochs=3), fit=fit, log=lambda line: None)


@pytest.mark.slow
def test_grid_covers_every_cell_once_and_stops(tmp_path):
    fit = Recorder()
    result = run(tmp_path, {k: list(v) for k, v in GRID.items()}, fit, sampler="grid", pruner="none")
    cells = {(c["lr"], c["width_mult"]) for c in fit.calls}
    assert len(fit.calls) == 6 and len(cells) == 6
    assert result.best_params["lr"] == 0.1
    run(tmp_path, {k: list(v) for k, v in GRID.items()}, fit, sampler="grid", pruner="none")
    assert len(fit.calls) == 6  # re-running a finished grid runs nothing


@pytest.mark.slow
def test_grid_resumes_only_the_remaining_cells(tmp_path):
    space = {k: list(v) for k, v in GRID.items()}
    first = Recorder(interrupt_at=2)
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path, space, first, sampler="grid", pruner="none")
    assert (tmp_path / "out" / "trials.csv").read_text().count("complete") == 2  # written on interrupt too
    second = Recorder()
    result = run(tmp_path, space, second, sampler="grid", pruner="none")
    done_first = {tuple(c.values()) for c in first.calls}
    done_second = {tuple(c.values()) for c in second.calls}
    assert len(first.calls) == 2 and len(second.calls) == 4 and not done_first & done_second
    assert len(result.study.get_trials(states=(TrialState.COMPLETE,))) == 6


@pytest.mark.slow
def test_random_search_is_seeded_and_resumes_with_new_points(tmp_path):
    a, b, c = Recorder(), Recorder(), Recorder()
    run(tmp_path, RANGE, a, name="a", sampler="random", pruner="none", trials=4, seed=3)
    run(tmp_path, RANGE, b, name="b", sampler="random", pruner="none", trials=2, seed=3)
    run(tmp_path, RANGE, b, name="b", sampler="random", pruner="none", trials=4, seed=3)  # resumed: 2 more
    run(tmp_path, RANGE, c, name="c", sampler="random", pruner="none", trials=4, seed=4)
    assert a.calls == b.calls
    assert len({c["lr"] for c in a.calls}) == 4
    assert [x["lr"] for x in c.calls] != [x["lr"] for x in a.calls]


@pytest.mark.slow
def test_tpe_counts_finished_trials_toward_the_total(tmp_path):
    fit = Recorder()
    run(tmp_path, RANGE, fit, sampler="tpe", trials=3)
    result = run(tmp_path, RANGE, fit, sampler="tpe", trials=5)
    assert len(fit.calls) == 5 and result.trials_run == 2


@pytest.mark.slow
def test_median_pruner_stops_poor_trials(tmp_path):
    fit = Recorder(epochs=3)
    result = run(tmp_path, RANGE, fit, sampler="random", pruner="median", trials=12, seed=0)
    states = [t.state for t in result.study.trials]
    assert states.count(TrialState.PRUNED) >= 1 and states.count(TrialState.COMPLETE) >= 3
    table = (tmp_path / "out" / "trials.md").read_text()
    assert "pruned" in table and "complete" in table


@pytest.mark.slow
def test_halving_pruner_and_loss_objective(tmp_path):
    def loss(trial, cfg, metric):
        assert metric == "loss"
        return abs(cfg.lr - 0.1)

    result = run(tmp_path, RANGE, loss, sampler="random", pruner="halving", objective="loss", trials=5)
    assert result.study.direction == optuna.study.StudyDirection.MINIMIZE
    assert result.best_value == min(t.value for t in result.study.trials)


@pytest.mark.slow
def test_timeout_starts_no_new_trial(tmp_path):
    import time

    def slow(trial, cfg, metric):
        time.sleep(0.4)
        return score(cfg)

    result = run(tmp_path, RANGE, slow, sampler="random", pruner="none", trials=50, timeout=0.5)
    assert 1 <= result.trials_run <= 3


@pytest.mark.slow
def test_results_table_best_yaml_and_plots(tmp_path):
    result = run(tmp_path, RANGE, Recorder(), sampler="random", pruner="none", trials=4, plots=True)
    out = tmp_path / "out"
    lines = (out / "trials.csv").read_text().splitlines()
    assert lines[0].startswith("rank,trial,state,value") and len(lines) == 5
    values = [float(line.split(",")[3]) for line in lines[1:]]
    assert values == sorted(values, reverse=True)
    best = TrainConfig.from_yaml(result.best_config)
    assert best.lr == result.best_params["lr"] and best.epochs == 3 and best.out is None
    for name in ("history", "importances", "slice", "parallel_coordinate"):
        assert Path(result.plots[name]).read_bytes()[:4] == b"\x89PNG"


@pytest.mark.slow
def test_importances_skipped_with_one_trial(tmp_path):
    result = run(tmp_path, RANGE, Recorder(), sampler="random", pruner="none", trials=1, plots=True)
    assert result.plots["importances"].startswith("skipped: needs >= 2 completed trials")
    assert Path(result.plots["history"]).is_file()


@pytest.mark.slow
def test_latency_limit_prunes_slow_models_before_training(tmp_path):
    space = {"width_mult": [0.35], "input_size": [32]}
    fit = Recorder()
    result = run(tmp_path, space, fit, name="strict", sampler="grid", pruner="none", max_latency_ms=1e-6)
    assert fit.calls == [] and result.study.trials[0].state == TrialState.PRUNED
    assert result.study.trials[0].user_attrs["infeasible"] and result.best_config is None
    result = run(tmp_path, space, fit, name="loose", sampler="grid", pruner="none", max_latency_ms=1e6)
    assert len(fit.calls) == 1 and result.study.trials[0].user_attrs["latency_ms"] > 0


@pytest.mark.parametrize("storage, message", [
    ("postgresql://user:secret@127.0.0.1:9/db", "cannot open storage 'postgresql://user:\\*\\*\\*@127.0.0.1:9/db'"),
    ("sqlite:////no/such/folder/study.db", "folder '/no/such/folder' does not exist"),
    ("nosuchdb://x", "cannot open storage 'nosuchdb://x'"),
])
def test_unreachable_storage_is_one_clear_error(tmp_path, storage, message):
    fit = Recorder()
    with pytest.raises(UserError, match=message) as info:
        run(tmp_path, RANGE, fit, storage=storage)
    assert fit.calls == [] and "\n" not in str(info.value) and "secret" not in str(info.value)


@pytest.mark.parametrize("options, message", [
    ({"trials": 0}, "--trials must be >= 1"),
    ({"timeout": -1}, "--timeout must be > 0"),
    ({"sampler": "bayes"}, "sampler must be one of grid, random, tpe"),
    ({"pruner": "hyperband"}, "pruner must be one of median, halving, none"),
    ({"objective": "f1"}, "--objective must be one of accuracy, loss"),
])
def test_bad_options(tmp_path, options, message):
    with pytest.raises(UserError, match=message):
        run(tmp_path, RANGE, Recorder(), **options)


WORKER = """
import sys, time
from mobilenetv2.training import TrainConfig
from mobilenetv2.tuning import SearchSpace, TuneConfig, tune

out, log = sys.argv[1], sys.argv[2]

def fit(trial, cfg, metric):
    with open(log, "a") as f:
        f.write(f"{cfg.lr} {cfg.width_mult}\\n")
    time.sleep(0.3)
    return cfg.lr

space = SearchSpace.from_dict({"lr": [0.01, 0.1, 0.3], "width_mult": [0.35, 0.5]})
cfg = TuneConfig(space=space, sampler="grid", pruner="none", out=out, plots=False)
tune(cfg, TrainConfig(), fit=fit, log=lambda line: None)
"""


@pytest.mark.slow
def test_two_workers_share_one_study(tmp_path):
    script = tmp_path / "worker.py"
    script.write_text(textwrap.dedent(WORKER))
    out, log = tmp_path / "shared", tmp_path / "calls.log"
    out.mkdir()
    workers = [subprocess.Popen([sys.executable, str(script), str(out), str(log)]) for _ in range(2)]
    assert [w.wait(timeout=120) for w in workers] == [0, 0]
    calls = log.read_text().splitlines()
    assert len(calls) == 6 and len(set(calls)) == 6
    study = optuna.load_study(study_name="mobilenetv2", storage=f"sqlite:///{out / 'study.db'}")
    assert len(study.get_trials(states=(TrialState.COMPLETE,))) == 6 and len(study.trials) == 6


def test_grid_cell_taken_by_another_trial_is_skipped():
    from mobilenetv2.tuning import make_sampler, run_trials

    sampler = make_sampler("grid", SearchSpace.from_dict({"lr": [0.1]}))
    study = optuna.create_study(sampler=sampler, direction="maximize")
    study.optimize(lambda trial: trial.suggest_categorical("lr", [0.1]), n_trials=1)
    late = study.ask()  # a worker that started after the last open cell was taken gets a finished cell
    assert sampler.open_cells(study) == 0 and sampler.taken(study, late)
    assert run_trials(study, lambda trial: 1.0, n_trials=5) == 0
