"""Inference speed of MobileNetV2 through every path, int8 variants, and int8 accuracy, measured in one run.

    .venv/bin/python benchmarks/inference_speed.py                      # MobileNetV2 1.0 at 224, 2 threads
    .venv/bin/python benchmarks/inference_speed.py --checkpoint runs/hymenoptera/best.safetensors \
        --calib ../shared/data/hymenoptera_data/train --val ../shared/data/hymenoptera_data/val

Prints Markdown (for BENCHMARKS.md), the CPU's features first (int8 speed-ups depend on VNNI / dot-product), and
writes the raw figures as JSON (--out).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

from mobilenetv2.benchmarking.inference import PATHS, benchmark_inference, meta_at_resolution
from mobilenetv2.export.exporter import export_model
from mobilenetv2.formats import open_runtime
from mobilenetv2.formats.onnx import quantize_onnx
from mobilenetv2.models import create_model
from mobilenetv2.reporting import format_table
from mobilenetv2.timing import time_interleaved

INT8_VARIANTS = {  # name -> quantize_onnx options
    "QDQ per-channel (default)": {},
    "QDQ per-tensor": {"per_channel": False},
    "QDQ per-channel reduce_range": {"reduce_range": True},
    "QOperator per-channel": {"quant_format": "qoperator"},
    "QDQ per-channel, no quant_pre_process": {"preprocess": False},
}


def int8_variants(model, resolution: int, threads: int, batches: list[int], rounds: int) -> tuple[str, dict]:
    """Time each int8 recipe against onnxruntime fp32 of the same model, interleaved."""
    rng = np.random.default_rng(0)
    calibration = [rng.standard_normal((8, 3, resolution, resolution), dtype=np.float32) for _ in range(2)]
    inputs = {b: rng.standard_normal((b, 3, resolution, resolution), dtype=np.float32) for b in batches}
    with tempfile.TemporaryDirectory() as tmp:
        fp32 = Path(tmp) / "fp32.onnx"
        export_model(model, fp32, "onnx", meta=meta_at_resolution(model, resolution))
        files = {"onnxruntime fp32": fp32}
        for i, (name, options) in enumerate(INT8_VARIANTS.items()):
            files[name] = quantize_onnx(fp32, Path(tmp) / f"int8_{i}.onnx", calibration, **options)
        backends = {name: open_runtime(path, threads=threads, spin=False) for name, path in files.items()}
        sizes = {name: path.stat().st_size / 1e6 for name, path in files.items()}
        timings = {b: time_interleaved({n: (lambda be=be, x=inputs[b]: be(x)) for n, be in backends.items()}, rounds=rounds)
                   for b in batches}
    rows, raw = [], {}
    for name in files:
        ms = {b: timings[b][name].median_ms for b in batches}
        raw[name] = {"size_mb": sizes[name], "median_ms": ms}
        rows.append([name, f"{sizes[name]:.2f}"] + [f"{ms[b]:.2f} ({timings[b]['onnxruntime fp32'].median_ms / ms[b]:.2f}x)"
                                                    for b in batches])
    headers = ["onnxruntime model", "size MB"] + [f"batch {b} median ms (speed-up vs fp32)" for b in batches]
    return format_table(headers, rows), raw


def checks(report) -> list[str]:
    """The issue's targets, evaluated on this run's figures."""
    by = {p.name: p for p in report.paths}
    out = []
    fp32 = [p for p in report.paths if p.name not in ("int8", "torchvision")]
    big = max(report.batches)
    if fp32:
        best = min(fp32, key=lambda p: p.median_ms[big])
        ratio = best.median_ms[big] / report.limit_ms(big)
        out.append(f"fastest fp32 at batch {big}: {best.name}, {ratio:.2f}x the compute limit (target <= 1.25x)")
    if "int8" in by and 1 in report.batches:
        if "onnx" in by:
            out.append(f"int8 vs onnxruntime fp32 at batch 1: {by['onnx'].median_ms[1] / by['int8'].median_ms[1]:.2f}x "
                       "faster (target >= 2x)")
        if "torchvision" in by:
            out.append(f"int8 vs torchvision eager at batch 1: {by['torchvision'].median_ms[1] / by['int8'].median_ms[1]:.1f}x "
                       "faster (target >= 10x)")
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", help="a trained checkpoint (default: a fresh mobilenet_v2 --width)")
    p.add_argument("--width", type=float, default=1.0)
    p.add_argument("--resolution", type=int, default=224)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--batch", type=int, nargs="+", default=[1, 32])
    p.add_argument("--rounds", type=int, default=20)
    p.add_argument("--no-compile", action="store_true")
    p.add_argument("--calib", help="calibration images for the accuracy check (needs --checkpoint)")
    p.add_argument("--val", help="validation images for the accuracy check")
    p.add_argument("--num-calib", type=int, default=128)
    p.add_argument("--out", default="inference_speed.json", help="raw figures (JSON)")
    args = p.parse_args()

    torch.manual_seed(0)
    if args.checkpoint:
        from mobilenetv2.weights import load_model

        model = load_model(args.checkpoint)
    else:
        model = create_model("mobilenet_v2", width_mult=args.width)
    paths = tuple(x for x in PATHS if not (args.no_compile and x == "compile"))
    report = benchmark_inference(model, resolution=args.resolution, threads=args.threads, batches=tuple(args.batch),
                                 paths=paths, rounds=args.rounds, on_progress=lambda m: print(m, file=sys.stderr))
    print("## Inference paths\n\n" + report.table() + "\n")
    print("\n".join(f"- {line}" for line in checks(report)) + "\n")
    if report.below_limit():
        print("- the compute limit was disturbed in this run (a path beat it): rerun on a quiet machine\n")
    variants_table, variants = int8_variants(model, args.resolution, args.threads, args.batch, args.rounds)
    print(f"## int8 recipes (onnxruntime, {args.threads} threads)\n\n{variants_table}\n")
    results = {"paths": report.to_dict(), "checks": checks(report), "int8_variants": variants}
    if args.checkpoint and args.calib:
        from mobilenetv2.export.ptq import quantize_checkpoint

        with tempfile.TemporaryDirectory() as tmp:
            acc = quantize_checkpoint(args.checkpoint, Path(tmp) / "int8.onnx", args.calib, val=args.val,
                                      num_calib=args.num_calib, threads=args.threads)
        print(f"## int8 accuracy\n\n{acc.table()}\n\n{acc.verdict()}\n")
        results["accuracy"] = acc.to_dict()
    Path(args.out).write_text(json.dumps(results, indent=2, default=str))
    print(f"raw figures: {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
