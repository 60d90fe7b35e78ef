"""Budgets and the accuracy/cost front of a search on a device target: ``front.md``/``front.csv`` (every trial, on the
front or not), a plot in the style of the paper's accuracy-vs-MACs figure, the front's deployable files, the pick."""

from __future__ import annotations

import csv
import io
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mobilenetv2.errors import UserError
from mobilenetv2.io import atomic_path, atomic_write_text

# objective name -> (figure in a trial's attributes, label with unit); every cost is minimised
COSTS = {"latency": ("latency_ms", "latency (ms, batch 1)"), "arena": ("arena_kib", "TFLM arena (KiB)"),
         "flash": ("flash_kib", "flash (KiB)"), "size": ("size_mb", "file size (MB)"),
         "macs": ("macs_m", "multiply-adds (M)")}
FIGURES = ("latency_ms", "size_mb", "arena_kib", "flash_kib", "macs_m", "params_m")


@dataclass(frozen=True)
class Budgets:
    """Hard limits: a candidate over any of them is never trained."""

    max_latency_ms: float | None = None
    max_arena_kib: float | None = None
    max_flash_kib: float | None = None
    max_size_mb: float | None = None

    def limits(self) -> dict[str, float]:
        """figure -> limit, for the budgets given."""
        pairs = {"latency_ms": self.max_latency_ms, "arena_kib": self.max_arena_kib, "flash_kib": self.max_flash_kib,
                 "size_mb": self.max_size_mb}
        return {k: v for k, v in pairs.items() if v is not None}

    def check(self, target: str) -> None:
        for figure, limit in self.limits().items():
            flag = "--max-" + figure.replace("_", "-")
            if not limit > 0:
                raise UserError(f"{flag} must be > 0, got {limit}")
            if figure in ("arena_kib", "flash_kib") and target != "tflm":
                raise UserError(f"{flag} needs --target tflm (the arena and flash are TensorFlow Lite Micro's)")

    def over(self, figures: dict[str, float]) -> list[str]:
        """What ``figures`` exceed, e.g. ``['arena_kib 100.2 > 64']`` (empty: within every budget)."""
        return [f"{k} {figures[k]:.4g} > {v:g}" for k, v in self.limits().items() if figures.get(k, 0) > v]


def check_objectives(objectives: Sequence[str], target: str | None) -> None:
    if not objectives or objectives[0] != "accuracy" or len(set(objectives)) != len(objectives):
        raise UserError(f"--objectives starts with accuracy and names each cost once ({', '.join(COSTS)}), "
                        f"got {' '.join(objectives) or 'nothing'}")
    for name in objectives[1:]:
        if name not in COSTS:
            raise UserError(f"unknown objective {name!r}; the costs are {', '.join(COSTS)}")
        if target is None:
            raise UserError(f"--objectives accuracy {name} needs a --target to measure {name} on")
        if name in ("arena", "flash") and target != "tflm":
            raise UserError(f"objective {name} needs --target tflm (the arena and flash are TensorFlow Lite Micro's)")


def dominates(a: Sequence[float], b: Sequence[float]) -> bool:
    """Whether ``a`` dominates ``b``: no worse on every axis, better on one (axes: accuracy up, then costs down)."""
    ge = [a[0] >= b[0], *(x <= y for x, y in zip(a[1:], b[1:], strict=True))]
    gt = [a[0] > b[0], *(x < y for x, y in zip(a[1:], b[1:], strict=True))]
    return all(ge) and any(gt)


def front_indices(points: Sequence[Sequence[float]]) -> list[int]:
    """The indices of the points no other point dominates."""
    return [i for i, p in enumerate(points) if not any(dominates(q, p) for j, q in enumerate(points) if j != i)]


def cost_axes(objectives: Sequence[str], target: str) -> list[str]:
    """The costs of the front: those of --objectives, else the arena (tflm) or the latency."""
    return list(objectives[1:]) or (["arena"] if target == "tflm" else ["latency"])


def trial_rows(trials: list, axes: list[str]) -> tuple[list[str], list[dict[str, Any]]]:
    """One row per trial with a candidate (width, resolution, accuracy, figures, state, on the front or not)."""
    rows = []
    for t in trials:
        if "latency_ms" not in t.user_attrs:
            continue
        rows.append({"trial": t.number, "state": "over budget" if t.user_attrs.get("infeasible") else t.state.name.lower(),
                     "width": t.user_attrs.get("width"), "resolution": t.user_attrs.get("resolution"),
                     "accuracy": t.user_attrs.get("accuracy") if t.state.name == "COMPLETE" else None,
                     "fp32_accuracy": t.user_attrs.get("val_acc"),
                     **{f: t.user_attrs.get(f) for f in FIGURES}, "over": t.user_attrs.get("over", ""),
                     "on_front": False, "start": t.user_attrs.get("start"), "file": t.user_attrs.get("deployed")})
    scored = [r for r in rows if r["accuracy"] is not None]
    points = [[r["accuracy"], *(r[COSTS[a][0]] for a in axes)] for r in scored]
    for i in front_indices(points):
        scored[i]["on_front"] = True
    headers = ["trial", "state", "width", "resolution", "accuracy", "fp32_accuracy", *FIGURES, "on_front", "over",
               "start", "file"]
    return headers, rows


def fmt(value: Any) -> Any:
    return f"{value:.4g}" if isinstance(value, float) else ("" if value is None else value)


def write_front(trials: list, axes: list[str], out: Path, budgets: Budgets, title: str, plots: bool = True) -> dict:
    """``front.md``, ``front.csv``, ``front.png`` and ``front/`` (each front model's deployable file) in ``out``."""
    from mobilenetv2.reporting import format_table

    headers, rows = trial_rows(trials, axes)
    rows.sort(key=lambda r: (not r["on_front"], r["accuracy"] is None, -(r["accuracy"] or 0), r["trial"]))
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows([headers, *([fmt(r[h]) for h in headers] for r in rows)])
    atomic_write_text(out / "front.csv", buf.getvalue())
    limits = ", ".join(f"{k} <= {v:g}" for k, v in budgets.limits().items()) or "none"
    atomic_write_text(out / "front.md", f"# {title}\n\nbudgets: {limits}; front over accuracy and "
                      f"{', '.join(axes)}\n\n" + format_table(headers, [[fmt(r[h]) for h in headers] for r in rows]) + "\n")
    files = copy_front_files([r for r in rows if r["on_front"]], out / "front")
    written = {"md": out / "front.md", "csv": out / "front.csv", "files": files}
    if plots:
        written["plot"] = plot_front(rows, axes[0], budgets, out / "front.png", title)
    return written


def copy_front_files(rows: list[dict], folder: Path) -> list[Path]:
    """Each front model's deployed file, named by trial, width and resolution (the folder is rewritten)."""
    if folder.is_dir():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    copied = []
    for r in rows:
        if not r["file"] or not Path(r["file"]).is_file():
            continue
        src = Path(r["file"])
        dest = folder / f"trial_{r['trial']:04d}_w{r['width']}_r{r['resolution']}{''.join(src.suffixes[-2:])}"
        shutil.copy2(src, dest)
        for companion in src.parent.glob(src.name + ".*"):  # sidecar metadata, if the format has one
            shutil.copy2(companion, dest.parent / (dest.name + companion.name[len(src.name):]))
        copied.append(dest)
    return copied


def plot_front(rows: list[dict], axis: str, budgets: Budgets, path: Path, title: str) -> str:
    """Accuracy against the cost: every trained trial, the front joined, the budget line; over-budget candidates
    marked on the cost axis."""
    from mobilenetv2.extras import optional
    from mobilenetv2.reporting import pyplot

    if not optional("matplotlib", "plots", "the front plot"):
        return "skipped: no matplotlib"
    plt = pyplot()
    key, label = COSTS[axis]
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    scored = [r for r in rows if r["accuracy"] is not None and r[key] is not None]
    over = [r for r in rows if r["state"] == "over budget" and r[key] is not None]
    ax.scatter([r[key] for r in scored], [100 * r["accuracy"] for r in scored], c="tab:gray", label="trials")
    front = sorted((r for r in scored if r["on_front"]), key=lambda r: r[key])
    ax.plot([r[key] for r in front], [100 * r["accuracy"] for r in front], "o-", c="tab:blue", label="front")
    for r in scored:
        ax.annotate(f"{r['width']}/{r['resolution']}", (r[key], 100 * r["accuracy"]), fontsize=7,
                    xytext=(3, 3), textcoords="offset points")
    if over:
        ax.scatter([r[key] for r in over], [0] * len(over), marker="x", c="tab:red", label="over budget (not trained)")
    limit = budgets.limits().get(key)
    if limit is not None:
        ax.axvline(limit, ls="--", c="tab:red", label=f"budget {limit:g}")
    ax.set(xlabel=label, ylabel="accuracy (%)", title=title)
    ax.legend(fontsize=8)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    return str(path)


def pick(trials: list) -> Any:
    """The most accurate trained trial (every trained trial is within the budgets), the smaller model on a tie
    (fewer multiply-adds, so the pick is on the front), or None."""
    done = [t for t in trials if t.state.name == "COMPLETE" and t.user_attrs.get("accuracy") is not None]
    return max(done, key=lambda t: (t.user_attrs["accuracy"], -t.user_attrs.get("macs_m", 0), -t.number), default=None)
