"""``mobilenetv2 quantize``: int8 post-training static quantization with onnxruntime, fp32 vs int8 side by side."""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("quantize", help="int8 static quantization (onnxruntime QDQ, per-channel) with accuracy report",
                       description="Export the checkpoint to ONNX, quantize it to int8 (uint8 activations calibrated on "
                                   "real training images, per-channel int8 weights, QDQ format), and report fp32 and "
                                   "int8 top-1, agreement, size and batch-1 latency side by side.")
    p.add_argument("checkpoint", help="our .safetensors checkpoint or a run folder")
    p.add_argument("--calib", required=True, metavar="DATA",
                   help="calibration images: a folder of class sub-folders (or with train/ and val/), a CSV, ...")
    p.add_argument("--num-calib", type=int, default=128, help="calibration images drawn at random (default 128)")
    p.add_argument("--method", default="minmax", choices=["minmax", "percentile", "entropy"],
                   help="activation range calibration (default minmax)")
    p.add_argument("--val", metavar="DATA", help="validation data (default: the validation split of --calib)")
    p.add_argument("--out", help="output file (default: beside the checkpoint, NAME.int8.onnx)")
    p.add_argument("--format", default="qdq", choices=["qdq", "qoperator"], help="ONNX quantization format (default qdq)")
    p.add_argument("--per-tensor", action="store_true", help="one scale per weight tensor instead of per channel")
    p.add_argument("--reduce-range", action="store_true", help="7-bit weights (for CPUs without VNNI, if accuracy suffers)")
    p.add_argument("--threads", type=int, default=2, help="threads for the speed comparison (default 2)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    return p


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from mobilenetv2.cli.common import print_json
    from mobilenetv2.export.ptq import quantize_checkpoint

    checkpoint = Path(args.checkpoint)
    out = args.out or (checkpoint / "model.int8.onnx" if checkpoint.is_dir() else checkpoint.with_suffix(".int8.onnx"))
    report = quantize_checkpoint(checkpoint, out, args.calib, val=args.val, num_calib=args.num_calib, method=args.method,
                                 quant_format=args.format, per_channel=not args.per_tensor,
                                 reduce_range=args.reduce_range, threads=args.threads)
    if args.json:
        print_json(report.to_dict())
        return 0
    print(report.table())
    print(report.verdict())
    print(f"wrote {out}")
    return 0
