"""``mobilenetv2 benchmark``: latency and throughput of every inference path, against torchvision and the compute limit."""

from __future__ import annotations

import argparse
import sys

from mobilenetv2.cli.common import add_model_args, model_kwargs, print_json

LARGE_INPUT = 320  # above this input size the default is batch 1 only (32 DeepLab images at 513 are 88 GMACs a call)


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    from mobilenetv2.benchmarking import DEFAULT_PATHS, PATHS

    p = sub.add_parser("benchmark", help="inference latency/throughput of eager, compiled, bf16, ONNX and OpenVINO "
                                         "fp32/bf16/int8 paths",
                       description="Time torchvision's eager mobilenet_v2 (the reference, for MobileNetV2 classifiers), "
                                   "our eager model (NCHW, channels_last, BN folded), torch.compile, PyTorch bf16, "
                                   "onnxruntime fp32 and int8, OpenVINO fp32 (pinned to f32), bf16 and int8 on the same "
                                   "ONNX files (with --paths also ExecuTorch, LiteRT and Core ML on their own files), "
                                   "and with --tflite the TFLite interpreter, interleaved in one run; report "
                                   "each path's precision, median/p90 latency, throughput, size, memory, its agreement "
                                   "with eager fp32 (top-1, max difference; on --images when given), and ratios to the "
                                   "reference (or to the TFLite interpreter) and to a compute limit of its precision "
                                   "measured on the spot (fp32 and bf16 matmuls; none for int8). bf16 paths run only "
                                   "where the CPU has bf16 (AMX-BF16, AVX-512 BF16), OpenVINO paths only with the "
                                   "[openvino] extra; the others are listed as not run. A checkpoint is timed at its own "
                                   "input size (a DeepLab segmentation checkpoint at 513).")
    p.add_argument("checkpoint", nargs="?", help="a checkpoint to benchmark (default: a fresh --model)")
    add_model_args(p)
    p.set_defaults(resolution=None)  # a checkpoint's own input size, else 224
    p.add_argument("--threads", type=int, default=2, help="intra-op threads for every path (default 2)")
    p.add_argument("--batch", type=int, nargs="+", default=None,
                   help=f"batch sizes (default 1 32; 1 alone above {LARGE_INPUT} px, e.g. segmentation at 513)")
    p.add_argument("--rounds", type=int, default=20, help="interleaved timing rounds (default 20)")
    others = [name for name in PATHS if name not in DEFAULT_PATHS]
    p.add_argument("--paths", nargs="+", default=list(DEFAULT_PATHS), choices=PATHS, metavar="PATH",
                   help=f"paths to time (default: {' '.join(DEFAULT_PATHS)}; on request, a row per other file and "
                        f"backend of the format registry: {' '.join(others)})")
    p.add_argument("--no-compile", action="store_true", help="skip torch.compile (it needs a C++ compiler and minutes)")
    p.add_argument("--tflite", metavar="FILE", nargs="+",
                   help="also time the LiteRT interpreter on these .tflite files, one row each (batch 1, each its own "
                        "input type, the same --threads): e.g. our int8 export beside Google's published file")
    p.add_argument("--images", nargs="+", metavar="PHOTO", help="photos (files, folders, globs; up to 64) on which every "
                                                                 "path's outputs are compared with eager fp32's "
                                                                 "(default: the random timing images)")
    p.add_argument("--calib", nargs="+", metavar="DATA", help="calibration images of the int8 paths: photos or labelled "
                                                              "data, as quantize takes them (default: 8 random images)")
    p.add_argument("--num-calib", type=int, default=64, help="calibration images with --calib (default 64)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    return p


def check_is_checkpoint(path: str) -> None:
    """An exported file is one line saying what benchmark takes (it builds every path's file from a checkpoint)."""
    from mobilenetv2.errors import UserError
    from mobilenetv2.formats.registry import entry_of

    try:
        entry = entry_of(path)
    except UserError:
        return  # no known suffix: the checkpoint loader says what it is
    if entry.name != "checkpoint":
        tflite = "; time a .tflite file with --tflite FILE" if entry.name == "tflite" else ""
        article = "an" if entry.title[0] in "AEIOU" else "a"
        raise UserError(f"{path} is {article} {entry.title}: benchmark takes a checkpoint (.safetensors, a run folder, a .pth "
                        f"state dict) and times every path it exports from it (ONNX, OpenVINO, ...){tflite}")


def run(args: argparse.Namespace) -> int:
    from mobilenetv2.benchmarking.inference import benchmark_inference

    meta = None
    if args.checkpoint:
        from mobilenetv2.weights import load_checkpoint

        check_is_checkpoint(args.checkpoint)
        ckpt = load_checkpoint(args.checkpoint)
        model, meta, resolution = ckpt.model, ckpt.meta, args.resolution or ckpt.meta.input_size
    else:
        from mobilenetv2.models import create_model

        model, resolution = create_model(args.model, **model_kwargs(args)), args.resolution or 224
    batches = tuple(args.batch or ((1,) if resolution > LARGE_INPUT else (1, 32)))
    paths = tuple(p for p in args.paths if not (args.no_compile and p == "compile"))
    calibration = None
    if args.calib:
        from mobilenetv2.benchmarking.inference import meta_at_resolution
        from mobilenetv2.export.calibration import calibration as calibration_batches
        from mobilenetv2.export.calibration import is_labelled

        pre = meta_at_resolution(model, resolution, meta).preprocessing
        calibration = calibration_batches(args.calib, is_labelled(args.calib), None, pre, args.num_calib)
    report = benchmark_inference(model, resolution=resolution, threads=args.threads, batches=batches,
                                 paths=paths, rounds=args.rounds, tflite=args.tflite, meta=meta, images=args.images,
                                 calibration=calibration, on_progress=lambda msg: print(msg, file=sys.stderr))
    if args.json:
        print_json(report.to_dict())
    else:
        print(report.table())
    return 0
