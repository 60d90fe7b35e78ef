"""Which MobileNetV2 width x resolution fits a microcontroller: the full-int8 LiteRT export of each (10 classes, int8
input and output, calibrated on real photos) opened under TensorFlow Lite Micro, its tensor arena (SRAM) and its file
(flash) against 256/512 KiB of SRAM with 1 MiB of flash. Random weights with live BatchNorm statistics: the arena and
the file depend on the shapes, not on the training.

    python benchmarks/microcontroller_fit.py --widths 0.35 0.5 0.75 --sizes 96 128 160 --out mcu.json
    python benchmarks/microcontroller_fit.py --widths 0.35 0.5 --sizes 96 128 144 --tf-padding
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import torch

from mobilenetv2.backends.tflm import TFLMRuntime
from mobilenetv2.export.calibration import calibration
from mobilenetv2.formats import get_format
from mobilenetv2.formats.base import QuantizeOptions
from mobilenetv2.hardware import describe
from mobilenetv2.models import create_model
from mobilenetv2.reporting import format_table
from mobilenetv2.spec import Preprocessing
from mobilenetv2.tuning.targets import with_live_batchnorm
from mobilenetv2.weights import CheckpointMeta

PHOTOS = Path(__file__).resolve().parents[2] / "shared" / "data" / "hymenoptera_data" / "train"
CLASSES = 10


def live_model(width: float, tf_padding: bool = False) -> torch.nn.Module:
    torch.manual_seed(0)
    return with_live_batchnorm(create_model("mobilenet_v2", width_mult=width, num_classes=CLASSES,
                                            tf_padding=tf_padding).eval())


def measure(width: float, size: int, folder: Path, tf_padding: bool = False) -> dict:
    model, pre = live_model(width, tf_padding), Preprocessing(input_size=size)
    meta = CheckpointMeta(architecture=model.arch, class_names=[str(i) for i in range(CLASSES)], preprocessing=pre)
    tflite = get_format("tflite")
    fp32, int8 = folder / f"w{width}_{size}.tflite", folder / f"w{width}_{size}.int8.tflite"
    tflite.export(model, fp32, meta)
    tflite.quantize(model, int8, meta, calibration([str(PHOTOS)], False, None, pre, 16), QuantizeOptions(io="int8"),
                    fp32_path=fp32)
    micro = TFLMRuntime(int8, meta, format="tflite")
    return {"width": width, "size": size, "tf_padding": tf_padding, "arena_bytes": micro.arena_bytes,
            "flash_bytes": micro.flash_bytes}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--widths", type=float, nargs="+", default=[0.35, 0.5, 0.75])
    parser.add_argument("--sizes", type=int, nargs="+", default=[96, 128, 160])
    parser.add_argument("--tf-padding", action="store_true",
                        help="TensorFlow's SAME padding (models converted from or fine-tuned on Google's TF weights): "
                             "no PAD copies before the stride-2 convolutions")
    parser.add_argument("--out", help="also write the rows as JSON")
    args = parser.parse_args()
    print(describe())
    rows = []
    with tempfile.TemporaryDirectory(prefix="mobilenetv2-mcu-") as tmp:
        for width in args.widths:
            for size in args.sizes:
                rows.append(measure(width, size, Path(tmp), args.tf_padding))
                print(rows[-1], flush=True)
    kib = 1024
    print(format_table(["width", "input", "arena KiB (SRAM)", "file KiB (flash)", "256 KiB + 1 MiB", "512 KiB + 1 MiB"],
                       [[r["width"], r["size"], f"{r['arena_bytes'] / kib:.0f}", f"{r['flash_bytes'] / kib:.0f}",
                         *("fits" if r["arena_bytes"] <= s * kib and r["flash_bytes"] <= 1024 * kib else "-" for s in (256, 512))]
                        for r in rows]))
    if args.out:
        Path(args.out).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
