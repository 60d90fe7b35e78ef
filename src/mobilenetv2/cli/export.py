"""``mobilenetv2 export``: ONNX, TorchScript, torch.export (.pt2) or ExecuTorch (.pte), BN folded, verified on the spot."""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("export", help="export a checkpoint to ONNX, TorchScript, .pt2 or ExecuTorch .pte (BN folded, verified)",
                       description="Export a checkpoint with BatchNorm folded into the convolutions and a dynamic batch "
                                   "dimension; class names and preprocessing are stored in the file. The exported model "
                                   "is checked against PyTorch (max |logit diff| <= 1e-4, the same class per image, or "
                                   "per pixel for segmentation) before it is written. --format pte: an ExecuTorch "
                                   "program (XNNPACK, fp32, batch 1) for on-device "
                                   "inference, with class names and preprocessing in FILE.pte.json beside it.")
    p.add_argument("checkpoint", help="our .safetensors checkpoint, a run folder, or a torchvision/timm state dict")
    p.add_argument("--format", default="onnx", choices=["onnx", "torchscript", "pt2", "pte"], help="default onnx")
    p.add_argument("--out", help="output file (default: beside the checkpoint, e.g. best.onnx)")
    p.add_argument("--opset", type=int, default=None, help="ONNX opset (default 18)")
    p.add_argument("--verify-images", nargs="+", metavar="IMAGE",
                   help="images, folders or globs to verify on (default: 4 synthetic images)")
    return p


def run(args: argparse.Namespace) -> int:
    from mobilenetv2.export.exporter import default_output, export_model
    from mobilenetv2.io import check_writable
    from mobilenetv2.weights import load_checkpoint

    out = args.out or default_output(args.checkpoint, args.format)
    check_writable(out)
    ckpt = load_checkpoint(args.checkpoint)
    check = export_model(ckpt.model, out, args.format, meta=ckpt.meta, opset=args.opset,
                         verify_images=args.verify_images)
    print(check.summary())
    print(f"wrote {out}")
    if args.format == "pte":
        from mobilenetv2.export.executorch import sidecar_path

        print(f"wrote {sidecar_path(out)} (class names, preprocessing)")
    return 0
