"""DeepLabv3-MobileNetV2 at 513x513: our paths (eager fp32, BN folded, ONNX fp32, ONNX int8) beside the TFLite
interpreter running the published uint8 file, interleaved in one run, on the same threads.

Converts ``../shared/data/segmentation/deeplabv3_mnv2_pascal_quant.tflite`` (and the half-width file), calibrates our
int8 ONNX on real photos, and prints one Markdown table per (model, threads) with the CPU's features.

    python benchmarks/segmentation_speed.py [--threads 2 1] [--rounds 15] [--out runs/segmentation-speed]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from mobilenetv2.benchmarking.inference import benchmark_inference
from mobilenetv2.export.quantize import image_batches
from mobilenetv2.weights.tflite_deeplab import convert_deeplab_tflite

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
FILES = {"DeepLabv3-MobileNetV2 1.0": "deeplabv3_mnv2_pascal_quant.tflite",
         "DeepLabv3-MobileNetV2 0.5": "deeplabv3_mnv2_dm05_pascal_quant.tflite"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[2, 1])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--only", choices=list(FILES), help="one model only")
    args = parser.parse_args()
    seg = DATA / "segmentation"
    if not seg.is_dir():
        raise SystemExit(f"needs {seg} (the shared real data beside the checkout)")
    photos = [str(DATA / "tflite"), str(seg / "bird_segmentation.bmp"), str(DATA / "hymenoptera_data" / "val")]
    for title, name in FILES.items():
        if args.only and args.only != title:
            continue
        ckpt = convert_deeplab_tflite(seg / name)
        calibration = [np.concatenate(image_batches(photos, ckpt.preprocessing, 16))]
        for threads in args.threads:
            report = benchmark_inference(ckpt.model, resolution=513, threads=threads, batches=(1,), rounds=args.rounds,
                                         paths=("eager", "bn_folded", "onnx", "int8"), calibration=calibration,
                                         tflite=str(seg / name))
            print(f"\n### {title}, {threads} thread(s)\n")
            print(report.table())
            fastest = min((p for p in report.paths if p.name != "tflite"), key=lambda p: p.median_ms[1])
            tflite = next(p for p in report.paths if p.name == "tflite")
            print(f"\nfastest of ours: {fastest.name} {fastest.median_ms[1]:.1f} ms vs TFLite interpreter "
                  f"{tflite.median_ms[1]:.1f} ms: {tflite.median_ms[1] / fastest.median_ms[1]:.2f}x", flush=True)


if __name__ == "__main__":
    main()
