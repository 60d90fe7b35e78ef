"""OpenVINO int8: our QDQ ONNX file (onnxruntime's static quantization, what `quantize` writes) read by OpenVINO, vs
NNCF's post-training quantization of the fp32 model (OpenVINO's own quantizer), on the same checkpoint, the same
calibration photos and the same validation photos: top-1, agreement with fp32, size, and speed timed interleaved.

    .venv/bin/python benchmarks/openvino_int8.py --checkpoint runs/hymenoptera/best.safetensors \\
        --calib ../shared/data/hymenoptera_data/train --val ../shared/data/hymenoptera_data/val

NNCF is not a dependency of the project (this script is why: it decides whether it should be); install it to run
this comparison: `pip install nncf`.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

from mobilenetv2.backends.base import RuntimeOptions
from mobilenetv2.data import build_eval_loader
from mobilenetv2.export.calibration import calibration, is_labelled
from mobilenetv2.export.exporter import export_model
from mobilenetv2.formats import entry_of, get_format
from mobilenetv2.formats.onnx import quantize_onnx
from mobilenetv2.hardware import describe
from mobilenetv2.reporting import format_table
from mobilenetv2.timing import time_interleaved
from mobilenetv2.weights import load_checkpoint


def nncf_int8(fp32_onnx: Path, out: Path, batches: list[np.ndarray], preset: str) -> Path:
    """NNCF's default post-training quantization of the fp32 model, saved as IR."""
    import nncf
    import openvino as ov

    model = ov.Core().read_model(str(fp32_onnx))
    images = [image[None] for batch in batches for image in batch]
    quantized = nncf.quantize(model, nncf.Dataset(images), subset_size=len(images),
                              preset=nncf.QuantizationPreset(preset))
    ov.save_model(quantized, str(out), compress_to_fp16=False)
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--calib", required=True)
    p.add_argument("--val", required=True)
    p.add_argument("--num-calib", type=int, default=128)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rounds", type=int, default=20)
    p.add_argument("--out", default="openvino_int8.json")
    args = p.parse_args()
    try:
        import nncf  # noqa: F401
    except ImportError:
        print("this comparison needs NNCF: pip install nncf", file=sys.stderr)
        return 2
    print(describe())
    ckpt = load_checkpoint(args.checkpoint)
    pre = ckpt.meta.preprocessing
    batches = calibration([args.calib], is_labelled([args.calib]), args.val, pre, args.num_calib)
    loader, _ = build_eval_loader(args.val, pre, split="all", batch_size=32, workers=0)
    images, labels = zip(*((x.numpy(), y.numpy()) for x, y in loader))
    options = RuntimeOptions(threads=args.threads, device="cpu", spin=False)
    with tempfile.TemporaryDirectory() as tmp:
        fp32 = Path(tmp) / "fp32.onnx"
        export_model(ckpt.model, fp32, "onnx", meta=ckpt.meta)
        files = {"OpenVINO fp32": fp32, "QDQ .onnx read by OpenVINO (ours)": quantize_onnx(fp32, Path(tmp) / "qdq.onnx", batches)}
        for preset in ("performance", "mixed"):
            files[f"NNCF {preset} preset"] = nncf_int8(fp32, Path(tmp) / f"nncf_{preset}.xml", batches, preset)
        runtimes = {}
        for name, path in files.items():
            fmt = get_format(entry_of(path).name)
            runtimes[name] = fmt.open(path, "openvino", options, meta=ckpt.meta,
                                      precision="fp32" if name == "OpenVINO fp32" else "int8")
        sizes = {n: sum(f.stat().st_size for f in (p, p.with_suffix(".bin")) if f.is_file()) / 1e6 for n, p in files.items()}
        outputs = {n: np.concatenate([r(x) for x in images]) for n, r in runtimes.items()}
        target = np.concatenate(labels)
        one, many = images[0][:1], np.concatenate(images)[:32]
        speed = {b: time_interleaved({n: (lambda r=r, x=x: r(x)) for n, r in runtimes.items()}, rounds=args.rounds)
                 for b, x in ((1, one), (32, many))}
    reference = outputs["OpenVINO fp32"].argmax(1)
    rows, raw = [], {}
    for name, out in outputs.items():
        top1, same = float((out.argmax(1) == target).mean()), float((out.argmax(1) == reference).mean())
        ms = {b: speed[b][name].median_ms for b in speed}
        raw[name] = {"top1": top1, "agreement": same, "size_mb": sizes[name], "median_ms": ms}
        rows.append([name, f"{top1:.2%}", f"{same:.1%}", f"{sizes[name]:.2f}", f"{ms[1]:.2f}", f"{32e3 / ms[32]:.0f}"])
    print(f"\n{len(target)} validation images; int8 calibrated on {sum(len(b) for b in batches)} images; "
          f"{args.threads} threads, {args.rounds} interleaved rounds\n")
    print(format_table(["OpenVINO model", "top-1", "same top-1 as fp32", "size MB", "b1 median ms", "b32 img/s"], rows))
    Path(args.out).write_text(json.dumps({"cpu": describe(), "results": raw}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
