"""Inference speed of MobileNetV2 through every path, int8 variants, and each path's accuracy, measured in one run.

    .venv/bin/python benchmarks/inference_speed.py                      # MobileNetV2 1.0 at 224, 2 threads
    .venv/bin/python benchmarks/inference_speed.py --checkpoint runs/hymenoptera/best.safetensors \
        --calib ../shared/data/hymenoptera_data/train --val ../shared/data/hymenoptera_data/val

Every path (eager, bf16, onnxruntime and OpenVINO fp32/bf16/int8, ...) is timed interleaved in one run with its
agreement to eager fp32 (on the --val photos when given); with --checkpoint, --calib and --val, the int8 paths are
calibrated on --calib and every path's top-1 on --val is measured with the same files. Prints Markdown (for
benchmarks/README.md), the CPU's features first (int8 and bf16 speed-ups depend on VNNI / AMX / dot-product), the goals of
the issue, and writes the raw figures as JSON (--out).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

from mobilenetv2.benchmarking.inference import DEFAULT_PATHS, benchmark_inference, label, meta_at_resolution
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
    fp32 = [p for p in report.paths if p.precision == "fp32" and p.name != "torchvision"]
    big = max(report.batches)
    if fp32:
        best = min(fp32, key=lambda p: p.median_ms[big])
        ratio = best.median_ms[big] / report.limit_ms(big)
        out.append(f"fastest fp32 at batch {big}: {label(best.name)}, {ratio:.2f}x the fp32 compute limit")
    for batch, target in ((big, 1.5), (1, 1.2)):
        timed = [p for p in report.paths if batch in p.median_ms and p.name != "tflite"]
        if "int8" in by and batch in report.batches and timed:
            best = min(timed, key=lambda p: p.median_ms[batch])
            speedup = by["int8"].median_ms[batch] / best.median_ms[batch]
            out.append(f"best path at batch {batch}: {label(best.name)} ({best.precision}), {speedup:.2f}x onnxruntime "
                       f"int8 (target >= {target}x: {'met' if speedup >= target else 'NOT met'})")
    if "torchvision" in by and 1 in report.batches:
        best = min((p for p in report.paths if 1 in p.median_ms), key=lambda p: p.median_ms[1])
        speedup = by["torchvision"].median_ms[1] / best.median_ms[1]
        out.append(f"best path at batch 1 vs torchvision eager fp32: {label(best.name)}, {speedup:.1f}x "
                   f"(target >= 7x: {'met' if speedup >= 7 else 'NOT met'})")
    return out


def path_accuracy(checkpoint: str, paths: tuple[str, ...], calibration: list[np.ndarray], val: str, threads: int,
                  resolution: int) -> tuple[str, dict]:
    """Top-1 on ``val`` of every path, built as the benchmark builds it (the int8 files calibrated on
    ``calibration``), and each int8/bf16 path's drop from eager fp32."""
    from mobilenetv2.backends.base import RuntimeOptions
    from mobilenetv2.benchmarking.inference import build_runtime, unavailable
    from mobilenetv2.data import build_eval_loader
    from mobilenetv2.weights import load_checkpoint

    ckpt = load_checkpoint(checkpoint)
    meta = meta_at_resolution(ckpt.model, resolution, ckpt.meta)
    loader, _ = build_eval_loader(val, meta.preprocessing, split="all", batch_size=32, workers=0)
    images, labels = zip(*((x.numpy(), y.numpy()) for x, y in loader))
    options = RuntimeOptions(threads=threads, device="cpu", spin=False)
    top1 = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in paths:
            if name in ("torchvision", "compile", "tflite") or unavailable(name):
                continue
            runtime, _ = build_runtime(name, ckpt.model.eval(), meta, Path(tmp), options, calibration)
            hits = sum(int((runtime(x).argmax(1) == y).sum()) for x, y in zip(images, labels))
            top1[name] = (hits / sum(len(y) for y in labels), runtime.precision)
    reference = top1["eager"][0]
    rows = [[label(n), precision, f"{acc:.2%}", f"{100 * (reference - acc):+.2f}" if n != "eager" else "-"]
            for n, (acc, precision) in top1.items()]
    headers = ["path", "precision", f"top-1 on {sum(len(y) for y in labels)} val images", "drop vs eager fp32 (points)"]
    return format_table(headers, rows), {n: {"top1": acc, "precision": p} for n, (acc, p) in top1.items()}


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
    p.add_argument("--no-variants", action="store_true", help="skip the table of onnxruntime int8 recipes")
    p.add_argument("--images", help="photos for every path's agreement with eager fp32 (default: --val's)")
    p.add_argument("--tflite", help="also time this TFLite file in the LiteRT interpreter (batch 1), e.g. the published "
                                    "file the checkpoint was converted from")
    p.add_argument("--out", default="inference_speed.json", help="raw figures (JSON)")
    args = p.parse_args()

    torch.manual_seed(0)
    meta = None
    if args.checkpoint:
        from mobilenetv2.weights import load_checkpoint

        ckpt = load_checkpoint(args.checkpoint)
        model, meta = ckpt.model, ckpt.meta
    else:
        model = create_model("mobilenet_v2", width_mult=args.width)
    paths = tuple(x for x in DEFAULT_PATHS if not (args.no_compile and x == "compile"))
    calibration = None
    if args.calib:
        from mobilenetv2.export.calibration import calibration as calibration_batches
        from mobilenetv2.export.calibration import is_labelled

        pre = meta_at_resolution(model, args.resolution, meta).preprocessing
        calibration = calibration_batches([args.calib], is_labelled([args.calib]), args.val, pre, args.num_calib)
    report = benchmark_inference(model, resolution=args.resolution, threads=args.threads, batches=tuple(args.batch),
                                 paths=paths, rounds=args.rounds, calibration=calibration, meta=meta, tflite=args.tflite,
                                 images=[args.images or args.val] if args.images or args.val else None,
                                 on_progress=lambda m: print(m, file=sys.stderr))
    print("## Inference paths\n\n" + report.table() + "\n")
    print("\n".join(f"- {line}" for line in checks(report)) + "\n")
    if report.below_limit():
        print("- a compute limit was disturbed in this run (a path beat it): rerun on a quiet machine\n")
    results = {"paths": report.to_dict(), "checks": checks(report)}
    if args.checkpoint and calibration and args.val:
        accuracy_table, results["accuracy"] = path_accuracy(args.checkpoint, paths, calibration, args.val, args.threads,
                                                            args.resolution)
        print(f"## Accuracy of every path (int8 calibrated on {sum(len(b) for b in calibration)} images of "
              f"{args.calib})\n\n{accuracy_table}\n")
    if not args.no_variants:
        variants_table, results["int8_variants"] = int8_variants(model, args.resolution, args.threads, args.batch,
                                                                 args.rounds)
        print(f"## int8 recipes (onnxruntime, {args.threads} threads)\n\n{variants_table}\n")
    Path(args.out).write_text(json.dumps(results, indent=2, default=str))
    print(f"raw figures: {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
