"""ExecuTorch XNNPACK fp32 vs int8 vs onnxruntime fp32, MobileNetV2 at batch 1, interleaved in one run.

Random weights with non-trivial BatchNorm statistics; int8 calibrated on random images (speed only: accuracy of int8
on real photos comes from ``mobilenetv2 quantize --format pte``, see benchmarks/README.md). onnxruntime runs with
thread spinning off: its spinning idle threads would otherwise steal the cores from XNNPACK's (8.8 ms instead of 5.6).

    .venv/bin/python benchmarks/executorch_int8.py [--resolution 224] [--threads 2] [--rounds 15]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import torch

from mobilenetv2.export.exporter import export_model
from mobilenetv2.formats import get_format, open_runtime
from mobilenetv2.formats.base import QuantizeOptions
from mobilenetv2.hardware import describe
from mobilenetv2.models import create_model
from mobilenetv2.reporting import format_table
from mobilenetv2.spec import Preprocessing
from mobilenetv2.timing import time_interleaved
from mobilenetv2.weights import CheckpointMeta


def random_model(resolution: int) -> torch.nn.Module:
    torch.manual_seed(0)
    model = create_model("mobilenet_v2").eval()
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):  # non-identity BN, so folding and quantization have work to do
            module.running_var.uniform_(0.5, 2.0)
            module.running_mean.uniform_(-0.1, 0.1)
    return model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--resolution", type=int, default=224)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()

    model = random_model(args.resolution)
    image = torch.randn(1, 3, args.resolution, args.resolution, generator=torch.Generator().manual_seed(1))
    calibration = [torch.randn(16, 3, args.resolution, args.resolution).numpy()]
    with tempfile.TemporaryDirectory() as tmp:
        paths = {name: Path(tmp) / name for name in ("fp32.pte", "int8.pte", "fp32.onnx")}
        meta = CheckpointMeta.for_model(model, preprocessing=Preprocessing(input_size=args.resolution))
        get_format("pte").export(model, paths["fp32.pte"], meta)
        get_format("pte").quantize(model, paths["int8.pte"], meta, calibration, QuantizeOptions())
        export_model(model, paths["fp32.onnx"], "onnx", meta=meta)
        runners = {
            "executorch fp32 (XNNPACK)": open_runtime(paths["fp32.pte"], threads=args.threads),
            "executorch int8 (XNNPACK)": open_runtime(paths["int8.pte"], threads=args.threads),
            "onnxruntime fp32": open_runtime(paths["fp32.onnx"], threads=args.threads, spin=False),
        }
        sizes = {name: paths[file].stat().st_size / 1e6 for name, file in
                 zip(runners, ("fp32.pte", "int8.pte", "fp32.onnx"))}
        x = image.numpy()
        stats = time_interleaved({name: (lambda run=run: run(x)) for name, run in runners.items()},
                                 rounds=args.rounds, iters_per_round=10)
    reference = stats["onnxruntime fp32"].median_ms
    print(describe())  # int8 speed depends on the CPU's VNNI / dot-product instructions
    print(f"MobileNetV2 1.0 at {args.resolution}, batch 1, {args.threads} threads, {args.rounds} interleaved rounds of 10 runs")
    print(format_table(["path", "size MB", "median ms", "p90 ms", "speed vs onnxruntime fp32"],
                       [[name, f"{sizes[name]:.2f}", f"{s.median_ms:.2f}", f"{s.p90_ms:.2f}", f"{reference / s.median_ms:.2f}x"]
                        for name, s in stats.items()]))


if __name__ == "__main__":
    main()
