"""Compare candidate models: parameters, size on disk, multiply-adds, latency, throughput, memory and accuracy.

Candidates are our registered models, torchvision classification models (random weights, nothing is
downloaded) or checkpoints. ``NAME@R`` measures a model at resolution R. Timings are interleaved across the
candidates and repeated (``benchmarking.time_interleaved``), so machine noise hits all alike.
"""

from __future__ import annotations

import csv
import difflib
import io
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from mobilenetv2.errors import UserError
from mobilenetv2.timing import restores_threads

DEFAULT_MODELS = [
    "mobilenet_v2_050", "mobilenet_v2_100", "mobilenet_v2_140", "mobilenet_v2_100@160", "mobilenet_v2_100@128",
    "mobilenet_v1_100", "mobilenet_v3_small", "mobilenet_v3_large",
    "resnet18", "shufflenet_v2_x1_0", "mnasnet1_0", "efficientnet_b0", "squeezenet1_1",
]
SAME_BN_MOMENTUM = 0.1  # BatchNorm momentum of every model fine-tuned by --epochs, unless --train-config sets one
QUICK_MODELS = ["mobilenet_v2_050", "mobilenet_v2_100", "mobilenet_v2_100@160", "mobilenet_v3_small", "resnet18",
                "shufflenet_v2_x1_0"]


@dataclass
class Candidate:
    """One model to measure: how to build it (given a class count) and at which resolution."""

    name: str
    source: str  # "ours", "torchvision" or "checkpoint"
    model_name: str
    resolution: int
    checkpoint: str | None = None

    def build(self, num_classes: int = 1000) -> nn.Module:
        if self.source == "checkpoint":
            from mobilenetv2.weights import load_model

            return load_model(self.checkpoint)
        if self.source == "ours":
            from mobilenetv2.models import create_model

            return create_model(self.model_name, num_classes=num_classes)
        import torchvision

        return torchvision.models.get_model(self.model_name, weights=None, num_classes=num_classes)


@dataclass
class Row:
    """The measurements of one candidate."""

    name: str
    source: str
    resolution: int
    params_m: float
    size_mb: float
    macs_m: float
    latency_ms: float
    latency_p90_ms: float
    latency_spread: float
    throughput: float
    peak_memory_mb: float | None = None
    accuracy: float | None = None
    pareto: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


def torchvision_classifiers() -> list[str]:
    import torchvision

    return torchvision.models.list_models(module=torchvision.models)


def parse_candidate(spec: str, resolution: int) -> Candidate:
    """``name``, ``name@R`` or ``torchvision:name[@R]``; our names first, then torchvision's classifiers."""
    from mobilenetv2.models import list_models
    from mobilenetv2.models.checks import check_resolution

    name, _, res = spec.partition("@")
    if res:
        if not res.isdigit():
            raise UserError(f"bad model spec {spec!r}: expected NAME or NAME@RESOLUTION, e.g. mobilenet_v2_100@160")
        resolution = int(res)
    check_resolution(resolution)
    display = spec if res else name
    if name.startswith("torchvision:"):
        name = name.removeprefix("torchvision:")
    elif name in list_models():
        return Candidate(display, "ours", name, resolution)
    outsiders = torchvision_classifiers()
    if name in outsiders:
        return Candidate(display, "torchvision", name, resolution)
    close = difflib.get_close_matches(name, list_models() + outsiders, n=3)
    hint = f" (did you mean {', '.join(close)}?)" if close else ""
    raise UserError(f"unknown model {name!r}{hint}; use one of `mobilenetv2 info --list` or a torchvision "
                    f"classification model such as resnet18, efficientnet_b0")


def checkpoint_candidate(path: str) -> Candidate:
    from mobilenetv2.weights.checkpoint import load_checkpoint, resolve_checkpoint_path

    resolved = resolve_checkpoint_path(path)
    ckpt = load_checkpoint(resolved)
    name = Path(path).name if Path(path).is_dir() else resolved.stem
    return Candidate(name, "checkpoint", ckpt.model.arch["name"], ckpt.preprocessing.input_size, str(resolved))


def pareto_front(costs: list[float], values: list[float]) -> list[bool]:
    """True for points that no other point beats: none is at most as costly and at least as good, one strictly."""
    flags = []
    for i, (c, v) in enumerate(zip(costs, values)):
        dominated = any((c2 <= c and v2 >= v and (c2 < c or v2 > v)) for j, (c2, v2) in enumerate(zip(costs, values)) if j != i)
        flags.append(not dominated)
    return flags


def disk_size_mb(model: nn.Module) -> float:
    """Bytes of the state dict saved as safetensors (float32), in MB."""
    from safetensors.torch import save_model

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.safetensors"
        save_model(model, str(path))
        return path.stat().st_size / 1e6


def peak_memory_mb(candidate: Candidate, num_classes: int, threads: int) -> float | None:
    """Peak resident memory of building the model and running one batch-1 forward pass, in a fresh process."""
    cmd = [sys.executable, "-m", "mobilenetv2.benchmarking.memprobe", json.dumps(asdict(candidate)), str(num_classes),
           str(threads)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": str(threads)})
    if proc.returncode != 0:
        return None
    return json.loads(proc.stdout.strip().splitlines()[-1])["peak_mb"]


@restores_threads
def measure(candidates: list[Candidate], *, repeats: int = 10, warmup: int = 2, batch_size: int = 32, threads: int | None = None,
            memory: bool = True, num_classes: int = 1000, models: dict[str, nn.Module] | None = None,
            progress: Callable[[str], None] | None = None) -> list[Row]:
    """Static measures per model, then batch-1 latency and batch throughput timed interleaved across all models."""
    from mobilenetv2.analysis import count_macs
    from mobilenetv2.timing import time_interleaved

    say = progress or (lambda _msg: None)
    threads = threads or torch.get_num_threads()
    torch.set_num_threads(threads)
    models = dict(models or {})
    rows, singles, batches = [], {}, {}
    for c in candidates:
        model = models.get(c.name) or c.build(num_classes)
        model.eval()
        models[c.name] = model
        say(f"{c.name}: parameters, size, multiply-adds")
        rows.append(Row(c.name, c.source, c.resolution, params_m=sum(p.numel() for p in model.parameters()) / 1e6,
                        size_mb=disk_size_mb(model), macs_m=count_macs(model, c.resolution) / 1e6,
                        latency_ms=0.0, latency_p90_ms=0.0, latency_spread=0.0, throughput=0.0))
        x1, xb = torch.randn(1, 3, c.resolution, c.resolution), torch.randn(batch_size, 3, c.resolution, c.resolution)
        singles[c.name] = lambda m=model, x=x1: m(x)
        batches[c.name] = lambda m=model, x=xb: m(x)
    with torch.inference_mode():
        say(f"latency at batch 1: {repeats} interleaved rounds")
        latency = time_interleaved(singles, rounds=repeats, warmup=warmup)
        say(f"throughput at batch {batch_size}: {max(repeats // 2, 3)} interleaved rounds")
        throughput = time_interleaved(batches, rounds=max(repeats // 2, 3), warmup=1)
    for row, c in zip(rows, candidates):
        t = latency[c.name]
        row.latency_ms, row.latency_p90_ms, row.latency_spread = t.median_ms, t.p90_ms, t.spread
        row.throughput = batch_size / (throughput[c.name].median_ms / 1e3)
        row.extra["throughput_spread"] = throughput[c.name].spread
        if memory:
            say(f"{c.name}: peak memory (separate process)")
            row.peak_memory_mb = peak_memory_mb(c, num_classes, threads)
    return rows


def mark_pareto(rows: list[Row]) -> str:
    """Flag the Pareto front of latency against accuracy (or multiply-adds when no accuracy); return the value's name."""
    use_accuracy = all(r.accuracy is not None for r in rows)
    values = [r.accuracy if use_accuracy else r.macs_m for r in rows]
    for r, flag in zip(rows, pareto_front([r.latency_ms for r in rows], values)):
        r.pareto = flag
    return "accuracy" if use_accuracy else "MACs"


COLUMNS = [("model", "name"), ("source", "source"), ("res", "resolution"), ("params (M)", "params_m"),
           ("size (MB)", "size_mb"), ("MACs (M)", "macs_m"), ("latency b1 median (ms)", "latency_ms"),
           ("p90 (ms)", "latency_p90_ms"), ("spread", "latency_spread"), ("throughput (img/s)", "throughput"),
           ("peak mem (MB)", "peak_memory_mb"), ("accuracy", "accuracy"), ("Pareto", "pareto")]


def _fmt(key: str, value: Any) -> str:
    if value is None:
        return "n/a"
    if key == "pareto":
        return "*" if value else ""
    if key in ("latency_spread", "accuracy"):
        return f"{value:.3f}" if key == "latency_spread" else f"{value:.4f}"
    if isinstance(value, float):
        return f"{value:.1f}" if value >= 10 else f"{value:.2f}"
    return str(value)


def to_markdown(rows: list[Row], info: dict[str, Any]) -> str:
    from mobilenetv2.reporting import format_table

    better = "more accurate" if info["pareto_on"] == "accuracy" else "larger in MACs (MACs as a capacity proxy: no accuracy)"
    table = format_table([h for h, _ in COLUMNS], [[_fmt(k, getattr(r, k)) for _, k in COLUMNS] for r in rows])
    notes = (f"\nTimings: {info['threads']} thread(s), batch-1 latency over {info['repeats']} interleaved rounds "
             f"(after {info['warmup']} warm-up calls), throughput at batch {info['batch_size']}; spread = (p90 - min) / "
             f"median, largest {max(r.latency_spread for r in rows):.3f}. Size: state dict as float32 safetensors. "
             f"Peak memory: resident-set high-water mark of building the model and one batch-1 forward pass, measured "
             f"in a fresh process above its baseline after imports. Pareto (*): no other model is both faster and "
             f"{better}.")
    if info.get("accuracy"):
        notes += f" Accuracy: {info['accuracy']}."
    return table + "\n" + notes + "\n"


def to_csv(rows: list[Row]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow([k for _, k in COLUMNS])
    for r in rows:
        writer.writerow(["" if getattr(r, k) is None else getattr(r, k) for _, k in COLUMNS])
    return buf.getvalue()


def plot(rows: list[Row], pareto_on: str, path: Path) -> None:
    """Accuracy (or MACs) against batch-1 latency, Pareto front joined by a line."""
    from mobilenetv2.reporting import pyplot as _pyplot

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 5.5))
    value = (lambda r: r.accuracy) if pareto_on == "accuracy" else (lambda r: r.macs_m)
    for r in rows:
        ax.scatter(r.latency_ms, value(r), color="tab:red" if r.pareto else "tab:blue", zorder=3)
        ax.annotate(r.name, (r.latency_ms, value(r)), textcoords="offset points", xytext=(4, 4), fontsize=7)
    front = sorted((r for r in rows if r.pareto), key=lambda r: r.latency_ms)
    ax.plot([r.latency_ms for r in front], [value(r) for r in front], "r--", label="Pareto front")
    ax.set_xlabel("latency at batch 1, median (ms)")
    ax.set_ylabel("accuracy" if pareto_on == "accuracy" else "multiply-adds (M)")
    ax.set_title(f"{'Accuracy' if pareto_on == 'accuracy' else 'Multiply-adds'} vs latency")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_outputs(rows: list[Row], info: dict[str, Any], out_dir: str | os.PathLike[str]) -> Path:
    """compare.md, compare.csv, compare.json and compare.png, all appearing together."""
    from mobilenetv2.reporting import staged_dir

    with staged_dir(out_dir) as tmp:
        (tmp / "compare.md").write_text(to_markdown(rows, info))
        (tmp / "compare.csv").write_text(to_csv(rows))
        plot(rows, info["pareto_on"], tmp / "compare.png")
        (tmp / "compare.json").write_text(json.dumps({"info": info, "rows": [asdict(r) for r in rows]}, indent=2))
    return Path(out_dir)


def dataset_classes(data: str, data_root: str | None = None, val_split: float = 0.2, seed: int = 0) -> list[str]:
    from mobilenetv2.data import Preprocessing, build_eval_loader

    return build_eval_loader(data, Preprocessing(input_size=64), workers=0, val_split=val_split, seed=seed,
                             data_root=data_root)[1]


def fine_tune_accuracy(candidates: list[Candidate], data: str, epochs: int, runs_dir: Path, num_classes: int,
                       train_config: Any = None, say: Callable[[str], None] = print) -> dict[str, float]:
    """Best validation top-1 of every candidate after the same training budget (``train(cfg, model=...)``)."""
    import dataclasses

    from mobilenetv2.training import TrainConfig, train

    base = train_config or TrainConfig(data=data)
    if base.bn_momentum is None:  # the same training for all: V3's 0.01 and MnasNet's 0.0003 leave BN stale in short runs
        base = dataclasses.replace(base, bn_momentum=SAME_BN_MOMENTUM)
    accuracy = {}
    for c in candidates:
        say(f"{c.name}: training {epochs} epoch(s) on {data} at {c.resolution}px")
        cfg = dataclasses.replace(base, data=data, epochs=epochs, input_size=c.resolution, progress=False,
                                  out=str(runs_dir / c.name.replace("@", "-").replace(":", "-")))
        accuracy[c.name] = float(train(cfg, model=c.build(num_classes)).best_metric)
    return accuracy


def compare(models: list[str] | None = None, *, checkpoints: list[str] | None = None, resolution: int = 224,
            threads: int | None = None, repeats: int = 10, batch_size: int = 32, memory: bool = True,
            data: str | None = None, epochs: int | None = None, split: str = "val", train_config: Any = None,
            runs_dir: str | os.PathLike[str] | None = None, say: Callable[[str], None] = lambda _m: None,
            ) -> tuple[list[Row], dict[str, Any]]:
    """Measure the candidates (``DEFAULT_MODELS`` when neither models nor checkpoints are given); return rows and notes."""
    if repeats < 1 or batch_size < 1:
        raise UserError(f"repeats and batch size must be >= 1, got {repeats} and {batch_size}")
    if epochs is not None and data is None:
        raise UserError("--epochs needs --data (the dataset to fine-tune every model on)")
    if data is not None and epochs is None and not checkpoints:
        raise UserError("--data needs --epochs N (fine-tune every model for N epochs) or --checkpoints to evaluate")
    if epochs is not None and epochs < 1:
        raise UserError(f"--epochs must be >= 1, got {epochs}")
    specs = models if models is not None else ([] if checkpoints else DEFAULT_MODELS)
    trained = [parse_candidate(s, resolution) for s in specs]
    saved = [checkpoint_candidate(p) for p in checkpoints or []]
    names = [c.name for c in trained + saved]
    if len(set(names)) != len(names):
        raise UserError(f"each model may appear once; duplicates: {sorted({n for n in names if names.count(n) > 1})}")
    info: dict[str, Any] = {"threads": threads or torch.get_num_threads(), "repeats": repeats, "warmup": 2,
                            "batch_size": batch_size}
    accuracy: dict[str, float] = {}
    num_classes = 1000
    if data is not None:
        num_classes = len(dataset_classes(data, getattr(train_config, "data_root", None)))
        if epochs is not None and trained:
            with tempfile.TemporaryDirectory() as tmp:
                accuracy.update(fine_tune_accuracy(trained, data, epochs, Path(runs_dir or tmp), num_classes, train_config, say))
        for c in saved:
            from mobilenetv2.evaluation.evaluator import evaluate

            say(f"{c.name}: evaluating on {data} ({split})")
            accuracy[c.name] = evaluate(c.checkpoint, data, split=split).top1
        momentum = getattr(train_config, "bn_momentum", None) or SAME_BN_MOMENTUM
        budget = (f", best epoch after {epochs} epoch(s) of the same training (BatchNorm momentum {momentum:g} "
                  f"for every model)") if epochs else ""
        info["accuracy"] = (f"{split} top-1 on {data}" + budget
                            + (" (checkpoints as given)" if saved else ""))
    rows = measure(trained + saved, repeats=repeats, batch_size=batch_size, threads=threads, memory=memory,
                   num_classes=num_classes, progress=say)
    for r in rows:
        r.accuracy = accuracy.get(r.name)
    info["pareto_on"] = mark_pareto(rows)
    return rows, info
