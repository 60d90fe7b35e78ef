"""``mobilenetv2 quantize``: int8 post-training static quantization (ONNX by onnxruntime, ExecuTorch by XNNPACK's PT2E
quantizer), fp32 vs int8 side by side."""

from __future__ import annotations

import argparse

from mobilenetv2.formats import FORMATS, list_formats


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    formats = list_formats(quantizes=True)
    p = sub.add_parser("quantize", help="int8 static quantization (ONNX QDQ or ExecuTorch XNNPACK) with accuracy report",
                       description="Export the checkpoint, quantize it to int8 (activations calibrated on real images, "
                                   "labelled or not; per-channel int8 weights), and report fp32 and int8 size, batch-1 "
                                   "latency (timed interleaved, with the spread of the speed-up), agreement and logit "
                                   "differences, and accuracy when labelled validation data is given. The format is the "
                                   "one --out's extension names (" + ", ".join(
                                       f"{FORMATS[f].suffixes[0]}: {f}" for f in formats) + "), else --format, else "
                                   "ONNX (QDQ, uint8 activations, run by onnxruntime); .tflite is a full-integer LiteRT file "
                                   "(ai-edge-quantizer, NHWC, --io sets its input/output type); .pte is an on-device ExecuTorch "
                                   "program (XNNPACK, batch 1) quantized with XNNPACK's PT2E quantizer; .xml is an OpenVINO "
                                   "IR (with its .bin) of the same QDQ model, run by OpenVINO. Segmentation "
                                   "checkpoints: calibrated on photos, agreement counted per pixel, and with --val "
                                   "(images/ + masks/, VOC, ...) the mIoU of both through the task's own loader; "
                                   "detection checkpoints likewise, agreement counted per anchor and --val boxes giving "
                                   "the COCO mAP of both. The CPU's int8 features are printed first: int8 is about 2x "
                                   "fp32 only with VNNI (x86) or dot-product (ARM).")
    p.add_argument("checkpoint", help="our .safetensors checkpoint or a run folder")
    p.add_argument("--calib", required=True, nargs="+", metavar="DATA",
                   help="calibration images: labelled data (a folder of class sub-folders or with train/ and val/, a "
                        "CSV, ...) or unlabelled photos (a folder of photos, image files, or quoted globs; for a "
                        "segmentation model photos only, e.g. the images/ folder, not masks)")
    p.add_argument("--num-calib", type=int, default=128, help="calibration images drawn at random (default 128)")
    p.add_argument("--method", choices=["minmax", "percentile", "entropy"],
                   help="activation range calibration, ONNX only (default minmax)")
    p.add_argument("--val", metavar="DATA",
                   help="labelled validation data for the accuracy comparison (default: the validation split of a "
                        "labelled --calib; none for unlabelled photos); for segmentation, masks in any layout "
                        "`evaluate` reads, giving the mIoU of fp32 and int8; for detection, boxes (VOC XML, COCO, CSV) "
                        "giving the mAP of both")
    p.add_argument("--out", help="output file; its extension picks the format (default: beside the checkpoint, "
                                 "NAME.int8.onnx, or NAME.int8.pte with --format pte)")
    p.add_argument("--format", choices=formats, default=None, help="the format when --out does not name one (default onnx)")
    p.add_argument("--quant-format", default="qdq", choices=["qdq", "qoperator"],
                   help="onnxruntime's int8 operator form, ONNX only (default qdq)")
    p.add_argument("--per-tensor", action="store_true", help="one scale per weight tensor instead of per channel")
    p.add_argument("--reduce-range", action="store_true", help="7-bit weights (for CPUs without VNNI, if accuracy suffers)")
    p.add_argument("--io", choices=["uint8", "int8", "float"], default=None,
                   help="the input and output type of an int8 .tflite (default uint8, as Google's published files and "
                        "the Edge TPU take; int8 for TensorFlow Lite Micro; float: QUANTIZE/DEQUANTIZE inside the file)")
    p.add_argument("--threads", type=int, default=2, help="threads for the speed comparison (default 2)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    return p


def run(args: argparse.Namespace) -> int:
    from mobilenetv2.cli.common import print_json
    from mobilenetv2.cli.export import print_written
    from mobilenetv2.export.ptq import default_quantized_output, quantize_checkpoint, quantized_format
    from mobilenetv2.formats import get_format
    from mobilenetv2.formats.base import QuantizeOptions
    from mobilenetv2.io import check_writable

    fmt = quantized_format(args.out, args.format)
    out = args.out or default_quantized_output(args.checkpoint, fmt)
    check_writable(out)
    options = QuantizeOptions(method=args.method, quant_format=args.quant_format, per_channel=not args.per_tensor,
                              reduce_range=args.reduce_range, io=args.io)
    report = quantize_checkpoint(args.checkpoint, out, args.calib, val=args.val, num_calib=args.num_calib, fmt=fmt,
                                 options=options, threads=args.threads)
    if args.json:
        print_json(report.to_dict())
        return 0
    print(report.cpu)
    print(report.table())
    print(report.verdict())
    print_written(out, get_format(fmt))
    return 0
