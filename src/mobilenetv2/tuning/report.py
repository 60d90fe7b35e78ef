"""Results of a study: a ranked table (Markdown and CSV), the best config as YAML, and Optuna's plots as PNGs."""

from __future__ import annotations

import csv
import io
import warnings
from pathlib import Path
from typing import Any

from mobilenetv2.extras import require
from mobilenetv2.io import atomic_path, atomic_write_text

optuna = require("optuna", "tune")
FrozenTrial, TrialState = optuna.trial.FrozenTrial, optuna.trial.TrialState

STATE_ORDER = {TrialState.COMPLETE: 0, TrialState.PRUNED: 1, TrialState.RUNNING: 2, TrialState.FAIL: 3}


def _sort_key(t: FrozenTrial, sign: float) -> tuple:
    last = t.intermediate_values[max(t.intermediate_values)] if t.intermediate_values else None
    score = t.values[0] if t.state == TrialState.COMPLETE and t.values else last
    return STATE_ORDER.get(t.state, 4), (0, -sign * score) if score is not None else (1, 0), t.number


def ranked_trials(study: optuna.Study) -> list[FrozenTrial]:
    """Completed trials best first, then pruned ones by their last reported score, then the rest."""
    sign = 1.0 if study.directions[0] == optuna.study.StudyDirection.MAXIMIZE else -1.0
    trials = [t for t in study.get_trials(deepcopy=False) if t.params or t.state == TrialState.COMPLETE]
    return sorted(trials, key=lambda t: _sort_key(t, sign))


def trial_rows(study: optuna.Study) -> tuple[list[str], list[list[Any]]]:
    """Headers and rows of the ranked table: rank, trial, state, value, epochs, time, latency, params, run folder."""
    trials = ranked_trials(study)
    names = sorted({name for t in trials for name in t.params})
    headers = ["rank", "trial", "state", "value", "epochs", "time_s", "latency_ms", *names, "run_dir"]
    rows = []
    for rank, t in enumerate(trials, 1):
        value = t.values[0] if t.values else (t.intermediate_values[max(t.intermediate_values)]
                                              if t.intermediate_values else None)
        seconds = t.duration.total_seconds() if t.duration else None
        rows.append([
            rank, t.number, t.state.name.lower(), fmt(value), len(t.intermediate_values) or None,
            None if seconds is None else round(seconds, 1), t.user_attrs.get("latency_ms"),
            *(fmt(t.params.get(n)) for n in names), t.user_attrs.get("run_dir"),
        ])
    return headers, rows


def fmt(value: Any, digits: int = 4) -> Any:
    """Floats with ``digits`` significant digits, for tables and log lines."""
    return f"{value:.{digits}g}" if isinstance(value, float) else value


def write_table(study: optuna.Study, out: Path) -> tuple[Path, Path]:
    """``trials.md`` and ``trials.csv`` in ``out``."""
    from mobilenetv2.reporting import format_table

    headers, rows = trial_rows(study)
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows([headers, *rows])
    atomic_write_text(out / "trials.csv", buf.getvalue())
    atomic_write_text(out / "trials.md", format_table(headers, rows) + "\n")
    return out / "trials.md", out / "trials.csv"


def write_plots(study: optuna.Study, out: Path) -> dict[str, str]:
    """PNG plots in ``out/plots``; returns {name: path or the reason it was skipped} ({} without matplotlib)."""
    from mobilenetv2.extras import optional
    from mobilenetv2.reporting import pyplot

    if not optional("matplotlib", "plots", "the tune plots"):
        return {}
    plt = pyplot()
    from optuna.visualization import matplotlib as ovm

    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    varying = [n for n in {n for t in complete for n in t.params} if len({repr(t.params.get(n)) for t in complete}) > 1]
    plots = {
        "history": (ovm.plot_optimization_history, len(complete) >= 1, "no completed trial"),
        "intermediate_values": (ovm.plot_intermediate_values, any(t.intermediate_values for t in study.trials),
                                "no trial reported an epoch"),
        "importances": (ovm.plot_param_importances, len(complete) >= 2 and bool(varying),
                        "needs >= 2 completed trials whose parameters differ"),
        "slice": (ovm.plot_slice, len(complete) >= 1 and bool(complete[0].params), "no completed trial with parameters"),
        "parallel_coordinate": (ovm.plot_parallel_coordinate, len(complete) >= 2 and bool(varying),
                                "needs >= 2 completed trials whose parameters differ"),
    }
    written: dict[str, str] = {}
    for name, (plot, possible, why_not) in plots.items():
        if not possible:
            written[name] = f"skipped: {why_not}"
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ax = plot(study)
        fig = (ax.flat[0] if hasattr(ax, "flat") else ax).get_figure()
        path = out / "plots" / f"{name}.png"
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format="png", dpi=100, bbox_inches="tight")
        plt.close(fig)
        written[name] = str(path)
    return written
