"""The trial objective: the space's values over the base config, optional latency limit, then training with pruning."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mobilenetv2.errors import UserError
from mobilenetv2.extras import require
from mobilenetv2.training.config import TrainConfig
from mobilenetv2.tuning.space import SearchSpace

if TYPE_CHECKING:
    from mobilenetv2.tuning.device import Device

optuna = require("optuna", "tune")

METRICS = {"accuracy": ("val_acc", "maximize"), "loss": ("val_loss", "minimize")}

# fit(trial, cfg, metric) -> objective value; `train_trial` trains, tests pass something cheap.
Fit = Callable[[optuna.Trial, TrainConfig, str], float]


def trial_dir(out: str | Path, number: int) -> Path:
    return Path(out) / "trials" / f"trial_{number:04d}"


def trial_config(base: TrainConfig, params: dict[str, Any], run_dir: Path) -> TrainConfig:
    """The base config with a trial's values, training into ``run_dir``."""
    return TrainConfig.from_dict({**base.to_dict(), **params, "out": str(run_dir), "resume": None})


def resolution(cfg: TrainConfig) -> int:
    """The input size training will use (TrainConfig's default depends on the data)."""
    from mobilenetv2.training.defaults import resolve_defaults

    return resolve_defaults(cfg).input_size


def measure_latency_ms(cfg: TrainConfig, num_classes: int, rounds: int = 10) -> float:
    """Median batch-1 latency of the trial's architecture at its resolution: eager fp32 on one CPU thread, which
    is steadier than a many-thread figure on a shared machine and closer to one core of a phone."""
    import torch

    from mobilenetv2.models import create_model
    from mobilenetv2.timing import time_interleaved, torch_threads

    kwargs = {k: v for k, v in (("width_mult", cfg.width_mult), ("dropout", cfg.dropout)) if v is not None}
    model = create_model(cfg.model, num_classes=num_classes, **kwargs).eval()
    x = torch.randn(1, 3, resolution(cfg), resolution(cfg))

    def step() -> None:
        with torch.inference_mode():
            model(x)

    with torch_threads(1):
        return time_interleaved({"model": step}, rounds=rounds, warmup=3)["model"].median_ms


def train_trial(trial: optuna.Trial, cfg: TrainConfig, metric: str) -> float:
    """Train one trial, reporting the validation metric after every epoch so the pruner can stop it early."""
    from mobilenetv2.training import train

    key = METRICS[metric][0]
    multi = len(trial.study.directions) > 1  # Optuna prunes single-objective studies only

    def on_epoch_end(epoch: int, metrics: dict) -> None:
        trial.report(float(metrics[key]), epoch)
        if trial.should_prune():
            raise optuna.TrialPruned(f"epoch {epoch}: {key}={metrics[key]:.4f} is worse than the pruner allows")

    result = train(cfg, on_epoch_end=None if multi else on_epoch_end)
    trial.set_user_attr("val_acc", float(result.best_metric))
    trial.set_user_attr("epochs_run", len(result.history))
    trial.set_user_attr("checkpoint", str(result.best_checkpoint))
    if metric == "loss":
        return min(float(h["val_loss"]) for h in result.history)
    return float(result.best_metric)


def make_objective(space: SearchSpace, base: TrainConfig, out: str | Path, metric: str = "accuracy",
                   fit: Fit = train_trial, max_latency_ms: float | None = None,
                   num_classes: Callable[[], int] | None = None, device: Device | None = None,
                   costs: tuple[str, ...] = ()) -> Callable[[optuna.Trial], float | tuple[float, ...]]:
    """The function Optuna calls per trial. With ``max_latency_ms``, an architecture slower than the limit at
    batch 1 is pruned before any training (a hard constraint that costs no training time). With ``device`` (a
    ``--target``), the candidate's figures there and the budgets decide first; ``costs`` are further objectives."""
    if metric not in METRICS:
        raise UserError(f"objective must be one of {', '.join(METRICS)}, got {metric!r}")

    def objective(trial: optuna.Trial) -> float | tuple[float, ...]:
        params = space.suggest(trial)
        cfg = trial_config(base, device.starting_point(params, base) if device else params, trial_dir(out, trial.number))
        trial.set_user_attr("run_dir", cfg.out)
        if device is not None:
            return device_trial(trial, cfg, device, metric, fit, costs)
        if max_latency_ms is not None:
            latency = measure_latency_ms(cfg, num_classes() if num_classes else 1000)
            trial.set_user_attr("latency_ms", round(latency, 3))
            if latency > max_latency_ms:
                trial.set_user_attr("infeasible", True)
                raise optuna.TrialPruned(f"latency {latency:.2f} ms > --max-latency-ms {max_latency_ms}")
        return fit(trial, cfg, metric)

    return objective


def device_trial(trial: optuna.Trial, cfg: TrainConfig, device: Device, metric: str, fit: Fit,
                 costs: tuple[str, ...]) -> float | tuple[float, ...]:
    """Figures (cached) and budgets before training; training under the shared device lock; then the deployed file
    and its accuracy through the target's runtime (int8 targets), which is the trial's accuracy."""
    from mobilenetv2.tuning.front import COSTS, FIGURES
    from mobilenetv2.tuning.targets import device_lock

    candidate = device.candidate(cfg)
    figures = device.figures(candidate)
    trial.set_user_attr("width", candidate.width)
    trial.set_user_attr("resolution", candidate.resolution)
    if cfg.pretrained and device.pretrained:
        trial.set_user_attr("pretrained", cfg.pretrained)
    trial.set_user_attr("start", cfg.pretrained or "scratch")
    for name in FIGURES:
        if figures.get(name) is not None:
            trial.set_user_attr(name, round(float(figures[name]), 4))
    over = device.budgets.over(figures)
    if over:
        trial.set_user_attr("infeasible", True)
        trial.set_user_attr("over", "; ".join(over))
        raise optuna.TrialPruned(f"over budget on {device.target.name}: {'; '.join(over)} (not trained)")
    with device_lock(device.lock, exclusive=False):
        value = fit(trial, cfg, metric)
        checkpoint = trial.user_attrs.get("checkpoint")
        deployed, int8 = device.deploy(Path(checkpoint), Path(cfg.out)) if checkpoint else (None, None)
    accuracy = int8 if int8 is not None else trial.user_attrs.get("val_acc", value)
    trial.set_user_attr("accuracy", accuracy)
    if int8 is not None:
        trial.set_user_attr("int8_accuracy", int8)
    if deployed is not None:
        trial.set_user_attr("deployed", str(deployed))
    primary = accuracy if metric == "accuracy" else value
    return (primary, *(float(figures[COSTS[c][0]]) for c in costs)) if costs else primary
