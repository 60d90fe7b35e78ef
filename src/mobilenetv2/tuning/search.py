"""``tune``: a whole hyperparameter search, from the space file to the ranked table, plots and best config."""

from __future__ import annotations

import dataclasses
import logging
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mobilenetv2.errors import UserError
from mobilenetv2.extras import require
from mobilenetv2.training.config import TrainConfig
from mobilenetv2.training.flags import training_flags
from mobilenetv2.tuning import front, report
from mobilenetv2.tuning.front import Budgets, check_objectives
from mobilenetv2.tuning.objective import METRICS, Fit, make_objective, train_trial, trial_config
from mobilenetv2.tuning.space import SearchSpace
from mobilenetv2.tuning.study import (
    DONE,
    count_trials,
    display_url,
    make_pruner,
    make_sampler,
    open_storage,
    open_study,
    run_trials,
    storage_url,
)

optuna = require("optuna", "tune")
TrialState = optuna.trial.TrialState
_log = logging.getLogger(__name__)


@dataclass
class TuneConfig:
    """Options of a search (``mobilenetv2 tune`` flags); the training options come from a base TrainConfig."""

    space: str | Path | SearchSpace | None = "space.yaml"  # None: only --widths/--resolutions
    trials: int | None = None        # finished trials the study should reach (default: 20, or the whole grid)
    sampler: str | None = None       # grid | random | tpe | nsga2 (None: tpe, or nsga2 with several objectives)
    pruner: str = "median"           # median | halving | none
    timeout: float | None = None     # seconds after which no new trial starts
    objective: str = "accuracy"      # accuracy (maximise best val_acc) | loss (minimise val_loss)
    max_latency_ms: float | None = None
    study: str = "mobilenetv2"
    storage: str | None = None       # Optuna storage URL; default sqlite:///<out>/study.db
    out: str = "runs/tune"
    seed: int = 0
    retrain_best: bool = False
    test: str | None = None          # held-out data to evaluate the retrained model on
    plots: bool = True               # PNG plots take seconds; skip them for quick or very large studies
    target: str | None = None        # a device target (tuning/targets.py); None: --max-latency-ms as eager torch
    objectives: tuple[str, ...] = ()  # ("accuracy", cost, ...): a multi-objective search (needs a target)
    max_arena_kib: float | None = None
    max_flash_kib: float | None = None
    max_size_mb: float | None = None
    threads: int = 1                 # threads of the target's runtime when measuring latency
    widths: tuple[float, ...] = ()   # searched width multipliers (a categorical width_mult)
    resolutions: tuple[int, ...] = ()  # searched input sizes (a categorical input_size)
    pretrained_map: str | None = None  # YAML map of width -> checkpoint to start that width from
    pick: bool = False               # the most accurate trial within the budgets is "best" (front searches)

    @property
    def budgets(self) -> Budgets:
        return Budgets(self.max_latency_ms, self.max_arena_kib, self.max_flash_kib, self.max_size_mb)

    @property
    def multi(self) -> bool:
        return len(self.objectives) > 1


@dataclass
class TuneResult:
    out: Path
    study: optuna.Study
    trials_run: int                      # by this call (other workers and earlier runs may have run more)
    best_value: float | None
    best_params: dict[str, Any]
    best_config: Path | None             # YAML for `mobilenetv2 train --config`
    table: Path
    plots: dict[str, str] = field(default_factory=dict)
    retrain: Any = None                  # TrainResult of --retrain-best
    test_report: Any = None              # EvalReport of the retrained model on --test
    front: dict = field(default_factory=dict)  # --target: front.md, front.csv, front.png, the front's files


def load_space(path: str | Path, base: TrainConfig) -> SearchSpace:
    """Parse the space file; names must be TrainConfig fields and every value must be one TrainConfig accepts."""
    names = [f.name for f in dataclasses.fields(TrainConfig) if f.name not in ("out", "resume")]

    def check_value(name: str, value: Any) -> None:
        TrainConfig.from_dict({**base.to_dict(), name: value})

    return SearchSpace.from_yaml(path, names, check_value)


def check_options(cfg: TuneConfig) -> None:
    if cfg.trials is not None and cfg.trials < 1:
        raise UserError(f"--trials must be >= 1, got {cfg.trials}")
    if cfg.timeout is not None and not cfg.timeout > 0:
        raise UserError(f"--timeout must be > 0 seconds, got {cfg.timeout}")
    if cfg.max_latency_ms is not None and not cfg.max_latency_ms > 0:
        raise UserError(f"--max-latency-ms must be > 0, got {cfg.max_latency_ms}")
    check_target_options(cfg)
    if cfg.objective not in METRICS:
        raise UserError(f"--objective must be one of {', '.join(METRICS)}, got {cfg.objective!r}")
    if cfg.test is not None and not cfg.retrain_best:
        raise UserError("--test evaluates the retrained best config: add --retrain-best")
    if cfg.test is not None:
        from mobilenetv2.data.datasets import resolve_source

        resolve_source(cfg.test)  # a missing or empty test set fails now, not after the search


def check_target_options(cfg: TuneConfig) -> None:
    """The device options: a known target, budgets it can measure, objectives that start with accuracy."""
    from mobilenetv2.tuning.targets import get_target

    if cfg.target is not None:
        get_target(cfg.target)
    if cfg.target is None and any(v is not None for v in (cfg.max_arena_kib, cfg.max_flash_kib, cfg.max_size_mb)):
        raise UserError("--max-arena-kib, --max-flash-kib and --max-size-mb need a --target to measure them on")
    cfg.budgets.check(cfg.target or "torch")
    if cfg.objectives:
        check_objectives(cfg.objectives, cfg.target)
    if cfg.pick and cfg.target is None:
        raise UserError("--pick chooses among the models measured on a device: add --target")
    if cfg.threads < 1:
        raise UserError(f"--threads must be >= 1, got {cfg.threads}")
    if cfg.space is None and not (cfg.widths or cfg.resolutions):
        raise UserError("give a --space file, or --widths and/or --resolutions to search")


def build_space(cfg: TuneConfig, base: TrainConfig) -> SearchSpace:
    """The space file (if any) plus --widths and --resolutions as categorical width_mult and input_size."""
    space = cfg.space if isinstance(cfg.space, SearchSpace) else (load_space(cfg.space, base) if cfg.space else SearchSpace([]))
    extra = {"width_mult": cfg.widths, "input_size": cfg.resolutions}
    params = dict(space.params)
    for name, values in extra.items():
        flag = "--widths" if name == "width_mult" else "--resolutions"
        if not values:
            continue
        if name in params:
            raise UserError(f"{name} is searched twice: in the space file and by {flag}")
        extra_space = SearchSpace.from_dict({name: list(values)}, source=flag,
                                            check_value=lambda n, v: TrainConfig.from_dict({**base.to_dict(), n: v}))
        params.update(extra_space.params)
    return SearchSpace(params.values())


def make_device(cfg: TuneConfig, base: TrainConfig, out: Path, log: Callable[[str], None]):
    """The device stage of a --target search: the target's extra checked now, every candidate measured before
    training, one line when none is within the budgets."""
    from mobilenetv2.tuning.device import Device, read_pretrained_map
    from mobilenetv2.tuning.targets import get_target

    target = get_target(cfg.target)
    target.require()
    return Device(target, cfg.budgets, out, base.data, class_count(base), cfg.threads,
                  read_pretrained_map(cfg.pretrained_map), log)


def class_count(base: TrainConfig) -> Callable[[], int]:
    """The number of classes of the data, looked up once (for latency measurement of the real head)."""
    cache: list[int] = []

    def count() -> int:
        if not cache:
            from mobilenetv2.data import build_eval_loader
            from mobilenetv2.spec import Preprocessing

            _, names = build_eval_loader(base.data, Preprocessing(input_size=32), split="val", batch_size=1,
                                         workers=0, val_split=base.val_split, seed=base.seed, data_root=base.data_root)
            cache.append(len(names))
        return cache[0]

    return count


def note_base_change(base: TrainConfig, path: Path, log: Callable[[str], None]) -> None:
    """Keep the base config beside the study; say so when a resumed study continues with a different one."""
    if path.is_file() and TrainConfig.from_yaml(path) != base:
        changed = sorted(k for k, v in TrainConfig.from_yaml(path).to_dict().items() if base.to_dict()[k] != v)
        log(f"note: the base config differs from {path} ({', '.join(changed)}); earlier trials used that one")
    base.to_yaml(path)


def log_trial(log: Callable[[str], None]) -> Callable[[optuna.Study, optuna.trial.FrozenTrial], None]:
    def callback(study: optuna.Study, t: optuna.trial.FrozenTrial) -> None:
        params = ", ".join(f"{k}={report.fmt(v)}" for k, v in t.params.items())
        value = f" value {', '.join(f'{v:.4g}' for v in t.values)}" if t.values else ""
        over = t.user_attrs.get("over") or f"{t.user_attrs.get('latency_ms')} ms"
        why = f" ({over})" if t.user_attrs.get("infeasible") else ""
        seconds = t.duration.total_seconds() if t.duration else 0.0
        log(f"trial {t.number}: {t.state.name.lower()}{why}{value} [{seconds:.1f} s] {params}")

    return callback


def tune(cfg: TuneConfig, base: TrainConfig | None = None, fit: Fit = train_trial,
         log: Callable[[str], None] = _log.info) -> TuneResult:
    """Run (or resume, or join) the search in ``cfg.out`` and write its results there.

    ``fit(trial, train_config, metric) -> value`` trains one trial; the default trains with per-epoch pruning."""
    base = base or TrainConfig()
    check_options(cfg)
    space = build_space(cfg, base)
    sampler_name = cfg.sampler or ("nsga2" if cfg.multi else "tpe")
    sampler, pruner = make_sampler(sampler_name, space, cfg.seed), make_pruner("none" if cfg.multi else cfg.pruner)
    n_trials = cfg.trials or 20
    if sampler_name == "grid":
        n_trials = min(cfg.trials or space.grid_size(), space.grid_size())
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    storage = open_storage(storage_url(cfg.storage, out))
    optuna.logging.set_verbosity(logging.WARNING)
    directions = [METRICS[cfg.objective][1], *(["minimize"] * (len(cfg.objectives) - 1))]
    study = open_study(cfg.study, storage, sampler, pruner, directions if cfg.multi else directions[0])
    note_base_change(base, out / "base.yaml", log)
    device = make_device(cfg, base, out, log) if cfg.target else None
    if device is not None:
        device.check_reachable(device.measure_all(space, base))
    objective = make_objective(space, base, out, cfg.objective, fit, None if device else cfg.max_latency_ms,
                               class_count(base) if cfg.max_latency_ms is not None else None, device,
                               tuple(cfg.objectives[1:]))
    done = count_trials(study, DONE)
    log(f"study {cfg.study!r} ({display_url(storage.url)}): {done} of {n_trials} trials already finished; "
        f"sampler {sampler_name}, pruner {'none' if cfg.multi else cfg.pruner}, "
        f"objective{'s' if cfg.multi else ''} {' '.join(cfg.objectives) if cfg.multi else cfg.objective}"
        + (f", target {cfg.target}" if cfg.target else ""))
    try:
        ran = run_trials(study, objective, n_trials, cfg.timeout, callbacks=[log_trial(log)])
    except KeyboardInterrupt:
        report.write_table(study, out)
        log(f"interrupted: finished trials are kept in {out}; run the same command again to resume")
        raise
    return finish(study, cfg, base, out, ran, log)


def finish(study: optuna.Study, cfg: TuneConfig, base: TrainConfig, out: Path, ran: int,
           log: Callable[[str], None]) -> TuneResult:
    table, _ = report.write_table(study, out)
    plots = report.write_plots(study, out) if cfg.plots and not cfg.multi else {}
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    result = TuneResult(out, study, ran, None, {}, None, table, plots)
    if cfg.target:
        result.front = write_front(study, cfg, out, log)
    if not complete:
        log(f"no trial completed yet; the table of trials is in {table}")
        return result
    best = front.pick(complete) if cfg.pick or cfg.multi else study.best_trial
    result.best_value, result.best_params = best.values[0], dict(best.params)
    if cfg.target:
        log(pick_line(best, cfg))
    start = {"pretrained": best.user_attrs["pretrained"]} if best.user_attrs.get("pretrained") else {}
    best_cfg = dataclasses.replace(trial_config(base, {**best.params, **start}, out), out=None)
    best_cfg.to_yaml(out / "best.yaml")  # the complete config, for `mobilenetv2 train --config`
    result.best_config = out / "best.yaml"
    log(f"best trial {best.number}: {cfg.objective} {best.values[0]:.4f} with "
        + ", ".join(f"{k}={report.fmt(v)}" for k, v in best.params.items()))
    log(f"results: {table}, {out / 'trials.csv'}, {result.best_config}" + (f", plots in {out / 'plots'}" if plots else ""))
    log("to train it: mobilenetv2 train " + " ".join(training_flags({k: best_cfg.to_dict()[k] for k in best.params})))
    if cfg.retrain_best:
        result.retrain = retrain_best(best_cfg, out, log)
        final = Path(result.retrain.run_dir) / "last.safetensors"
        if cfg.test is not None:
            result.test_report = evaluate_retrained(final, cfg.test, log)
        else:
            log(f"final model {final}: trained on train + val, so no held-out data is left to measure it; "
                f"the best trial's validation {cfg.objective} above is the estimate (pass --test DATA for one)")
    return result


def pick_line(best: optuna.trial.FrozenTrial, cfg: TuneConfig) -> str:
    """The pick: the most accurate trained model within the budgets, with its deployed accuracy and figures."""
    a = best.user_attrs
    how = (f"int8 accuracy {a['int8_accuracy']:.4f} through {cfg.target}'s file on the validation split"
           if a.get("int8_accuracy") is not None else f"accuracy {a.get('accuracy', best.values[0]):.4f}")
    figures = ", ".join(f"{k} {a[k]:g}" for k in front.FIGURES if a.get(k) is not None)
    return (f"pick (most accurate within the budgets): trial {best.number}, width {a.get('width')} at "
            f"{a.get('resolution')} px: {how}; {figures}; file {a.get('deployed')}")


def write_front(study: optuna.Study, cfg: TuneConfig, out: Path, log: Callable[[str], None]) -> dict:
    """front.md/csv/png and front/ of a --target search."""
    axes = front.cost_axes(cfg.objectives, cfg.target)
    written = front.write_front(study.get_trials(deepcopy=False), axes, out, cfg.budgets,
                                f"{cfg.target}: accuracy vs {', '.join(axes)}", cfg.plots)
    log(f"front: {written['md']}, {written['csv']}" + (f", {written['plot']}" if written.get("plot") else "")
        + f"; {len(written['files'])} front file(s) in {out / 'front'}")
    return written


def retrain_best(best_cfg: TrainConfig, out: Path, log: Callable[[str], None]):
    """Train the best config again from scratch on train + val, without pruning, into ``out/best``.

    The final model is the last epoch's (``last.safetensors``): with the validation images in training, picking the
    best epoch on them would mean nothing."""
    from mobilenetv2.training import train

    cfg = dataclasses.replace(best_cfg, out=str(out / "best"), train_on_val=True)
    if (out / "best").is_dir():  # this search's own earlier retraining: redone with the best config as it is now
        shutil.rmtree(out / "best")
        log(f"replacing the earlier retrained model in {cfg.out}")
    log(f"retraining the best config on train + val into {cfg.out} ...")
    result = train(cfg)
    log(f"retrained on train + val for {cfg.epochs} epoch(s)")
    return result


def evaluate_retrained(checkpoint: Path, test: str, log: Callable[[str], None]):
    """The retrained model on held-out ``test`` data: every image of a class folder, or the val/test split of one."""
    from mobilenetv2.data.datasets import default_eval_split
    from mobilenetv2.evaluation.evaluator import evaluate

    report = evaluate(checkpoint, test, split=default_eval_split(test, None))
    written = report.write(checkpoint.parent / "test")
    log(f"test on {test}: {report.summary()}; report in {written}")
    return report
