"""``mobilenetv2 export``: a checkpoint to any format of the registry (ONNX, TorchScript, .pt2, ExecuTorch .pte, ...),
BatchNorm folded, verified against PyTorch before the file takes its name."""

from __future__ import annotations

import argparse
from pathlib import Path

from mobilenetv2.formats import FORMATS, list_formats


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    formats = list_formats(exports=True)
    p = sub.add_parser("export", help=f"export a checkpoint to {', '.join(formats)} (BN folded, verified)",
                       description="Export a checkpoint with BatchNorm folded into the convolutions; class names, "
                                   "preprocessing and task are stored in the file (or, for formats without a metadata "
                                   "field such as ExecuTorch's .pte, in FILE.json beside it; an OpenVINO IR is "
                                   "FILE.xml and FILE.bin, the metadata in its rt_info). The exported model is run "
                                   "on its backend and checked against PyTorch (max |logit diff| <= 1e-4, the same class "
                                   "per image, pixel or anchor) before it is written. Formats: " + "; ".join(
                                       f"{name} ({FORMATS[name].suffixes[0]}, runs on {FORMATS[name].backends[0]})"
                                       for name in formats) + ". Core ML (an .mlpackage folder, fp16, --int8 for int8 "
                                   "weights) runs only on macOS/iOS: elsewhere the graph given to coremltools is checked "
                                   "against PyTorch and the file through its spec (input, scale/bias, labels, outputs, "
                                   "weight types); its predictions are compared where Core ML runs.")
    p.add_argument("checkpoint", help="our .safetensors checkpoint, a run folder, or a torchvision/timm state dict")
    p.add_argument("--format", default="onnx", choices=formats, help="default onnx")
    p.add_argument("--out", help="output file (default: beside the checkpoint, e.g. best.onnx)")
    p.add_argument("--opset", type=int, default=None, help="ONNX opset (default 18)")
    p.add_argument("--verify-images", nargs="+", metavar="IMAGE",
                   help="images, folders or globs to verify on (default: 4 synthetic images)")
    p.add_argument("--int8", action="store_true",
                   help="Core ML only: int8 weights (coremltools.optimize, per channel; fp16 compute) instead of fp16")
    return p


def run(args: argparse.Namespace) -> int:
    from mobilenetv2.export.exporter import default_output, export_model
    from mobilenetv2.formats import get_format
    from mobilenetv2.io import check_writable
    from mobilenetv2.weights import load_checkpoint

    out = args.out or default_output(args.checkpoint, args.format)
    check_writable(out, folder=FORMATS[args.format].folder)
    ckpt = load_checkpoint(args.checkpoint)
    check = export_model(ckpt.model, out, args.format, meta=ckpt.meta, opset=args.opset,
                         verify_images=args.verify_images, int8_weights=args.int8)
    print(check.summary())
    print_written(out, get_format(args.format))
    return 0


def print_written(out, fmt) -> None:
    """The files an export left: the model, and the metadata beside it for formats without a field for it."""
    print(f"wrote {out}")
    for suffix in fmt.companions:
        print(f"wrote {Path(out).with_suffix(suffix)} (the weights of {Path(out).name})")
    if fmt.sidecar:
        print(f"wrote {fmt.sidecar_path(out)} (class names, preprocessing)")
