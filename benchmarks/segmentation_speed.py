"""DeepLabv3-MobileNetV2 at 513x513: our paths (eager fp32, BN folded, ONNX fp32, ONNX int8) beside the TFLite
interpreter running the published uint8 file, interleaved in one run, on the same threads.

Converts ``../shared/data/segmentation/deeplabv3_mnv2_pascal_quant.tflite`` and the half-width file (or takes
``--checkpoint CKPT`` with one ``--tflite FILE``), calibrates our int8 ONNX on 16 real photos with ``quantize``'s code,
times every path at batch 1 for each thread count, then checks on four real photos how far our int8 masks are from our
fp32 and from the interpreter's (pixel agreement, bird IoU against the true mask). Prints the CPU's features, one full
table per (model, threads), and a Markdown summary for benchmarks/README.md; ``--out FILE`` writes the raw figures as JSON.

    .venv/bin/python benchmarks/segmentation_speed.py [--threads 2 1] [--rounds 15] [--out seg-speed.json]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from mobilenetv2.benchmarking.inference import benchmark_inference
from mobilenetv2.export.calibration import calibration_batch_size, image_batches
from mobilenetv2.export.exporter import export_model
from mobilenetv2.formats import open_runtime
from mobilenetv2.formats.onnx import quantize_onnx
from mobilenetv2.formats.verify import OutputComparison
from mobilenetv2.hardware import describe
from mobilenetv2.reporting import format_table
from mobilenetv2.tasks import get_task
from mobilenetv2.weights import load_checkpoint

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
SEG = DATA / "segmentation"
PUBLISHED = {"deeplabv3_mnv2_pascal_quant.tflite": "width 1.0", "deeplabv3_mnv2_dm05_pascal_quant.tflite": "width 0.5"}
OURS = ("eager", "bn_folded", "onnx", "int8")
SHORT = {"eager": "eager fp32", "bn_folded": "eager fp32 BN folded + channels_last", "onnx": "ONNX fp32",
         "int8": "ONNX int8", "tflite": "TFLite interpreter"}
BIRD = 3


def calibration_photos() -> list[str]:
    return [str(DATA / "tflite"), str(SEG / "bird_segmentation.bmp"), str(DATA / "hymenoptera_data" / "val")]


def fidelity_photos() -> dict[str, np.ndarray]:
    """The bird and three more real photos as the 513x513 uint8 RGB arrays both runtimes are given."""
    paths = [SEG / "bird_segmentation.bmp", *(DATA / "tflite" / n for n in ("grace_hopper.bmp", "cat.bmp", "parrot.jpg"))]
    return {p.name: np.asarray(Image.open(p).convert("RGB").resize((513, 513), Image.BILINEAR)) for p in paths}


def interpreter_masks(path: Path, photos: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The published file's masks (its graph ends in an ArgMax) from its own uint8 NHWC input: ``runtime.run``."""
    runtime = open_runtime(path, "litert", threads=2)
    return {name: runtime.run(pixels[None])[0].copy() for name, pixels in photos.items()}


def bird_iou(mask: np.ndarray, truth: np.ndarray) -> float:
    labelled = truth != 255
    ours, true = (mask == BIRD) & labelled, (truth == BIRD) & labelled
    return float((ours & true).sum() / (ours | true).sum())


def fidelity(ckpt, tflite: Path, calibration: list[np.ndarray]) -> dict:
    """Our ONNX fp32 and int8 (the benchmark's recipe) against each other and against the interpreter."""
    photos = fidelity_photos()
    mean, std = np.array(ckpt.preprocessing.mean), np.array(ckpt.preprocessing.std)
    batch = np.stack([((p / 255.0 - mean) / std).transpose(2, 0, 1) for p in photos.values()]).astype(np.float32)
    with tempfile.TemporaryDirectory() as tmp:
        fp32_path, int8_path = Path(tmp) / "fp32.onnx", Path(tmp) / "int8.onnx"
        export_model(ckpt.model, fp32_path, "onnx", meta=ckpt.meta)
        quantize_onnx(fp32_path, int8_path, calibration)
        fp32_run, int8_run = open_runtime(fp32_path, threads=2), open_runtime(int8_path, threads=2)
        fp32 = np.concatenate([fp32_run(x[None]) for x in batch])
        int8 = np.concatenate([int8_run(x[None]) for x in batch])
    theirs = interpreter_masks(tflite, photos)
    truth = np.asarray(Image.open(SEG / "bird_segmentation_mask.bmp"))
    names = list(photos)

    def agree(masks: np.ndarray) -> dict[str, float]:
        return {n: float((m == theirs[n]).mean()) for n, m in zip(names, masks)}

    comparison = OutputComparison(get_task("segmentation"))
    comparison.update(fp32, int8)
    return {"photos": names, "int8_vs_fp32": comparison.result()["agreement"],
            "fp32_vs_tflite": agree(fp32.argmax(1)), "int8_vs_tflite": agree(int8.argmax(1)),
            "bird_iou": {"onnx fp32": bird_iou(fp32.argmax(1)[0], truth), "onnx int8": bird_iou(int8.argmax(1)[0], truth),
                         "tflite": bird_iou(theirs[names[0]], truth)}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[2, 1])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--tflite", nargs="+", type=Path, help="published .tflite files (default: both PASCAL files)")
    parser.add_argument("--checkpoint", help="our checkpoint of the (single) --tflite file, instead of converting it")
    parser.add_argument("--num-calib", type=int, default=16, help="real photos calibrating our int8 (default 16)")
    parser.add_argument("--no-fidelity", action="store_true", help="timings only")
    parser.add_argument("--out", type=Path, help="write the raw figures as JSON")
    args = parser.parse_args()
    files = args.tflite or [SEG / name for name in PUBLISHED]
    if args.checkpoint and len(files) != 1:
        raise SystemExit("--checkpoint goes with exactly one --tflite file (the one it was converted from)")
    if not SEG.is_dir():
        raise SystemExit(f"needs {SEG} (the shared real data beside the checkout)")
    from mobilenetv2.weights.tflite_deeplab import convert_deeplab_tflite

    print(describe(), flush=True)
    rows, raw = [], []
    for tflite in files:
        title = PUBLISHED.get(tflite.name, tflite.stem)
        ckpt = load_checkpoint(args.checkpoint) if args.checkpoint else convert_deeplab_tflite(tflite)
        size = ckpt.preprocessing.input_size
        stacked = np.concatenate(image_batches(calibration_photos(), ckpt.preprocessing, args.num_calib))
        step = calibration_batch_size(size)
        calibration = [stacked[i:i + step] for i in range(0, len(stacked), step)]
        for threads in args.threads:
            report = benchmark_inference(ckpt.model, resolution=size, threads=threads, batches=(1,), rounds=args.rounds,
                                         paths=OURS, calibration=calibration, tflite=str(tflite), meta=ckpt.meta)
            print(f"\n### {title}, {threads} thread(s)\n\n{report.table()}", flush=True)
            ms = {p.name.split(":")[0]: p.median_ms[1] for p in report.paths}  # the --tflite row is "tflite:FILE"
            fastest = min(OURS, key=ms.__getitem__)
            ratio = ms["tflite"] / ms[fastest]
            verdict = f"{ratio:.2f}x " + ("faster" if ratio >= 1 else "slower") + f" ({SHORT[fastest]})"
            rows.append([f"{title}, {threads} thread{'s' if threads > 1 else ''}",
                         *(f"{ms[n]:.1f} ms" for n in (*OURS, "tflite")), verdict])
            raw.append({"model": title, "file": tflite.name, "threads": threads, "macs": report.macs,
                        "median_ms": ms, "p90_ms": {p.name.split(":")[0]: p.p90_ms[1] for p in report.paths},
                        "fastest": fastest, "tflite_over_fastest": ratio})
        if not args.no_fidelity:
            found = fidelity(ckpt, tflite, calibration)
            raw.append({"model": title, "fidelity": found})
            mean = lambda d: float(np.mean(list(d.values())))  # noqa: E731
            print(f"\n{title}: int8 vs fp32 same class on {found['int8_vs_fp32']:.1%} of the pixels of "
                  f"{len(found['photos'])} photos; vs the interpreter: fp32 {mean(found['fp32_vs_tflite']):.1%}, int8 "
                  f"{mean(found['int8_vs_tflite']):.1%}; bird IoU " +
                  ", ".join(f"{k} {v:.3f}" for k, v in found["bird_iou"].items()), flush=True)
    print(f"\n{describe()}\n")
    print(format_table(["model, threads", *(SHORT[n] for n in (*OURS, "tflite")), "fastest of ours vs TFLite"], rows))
    if args.out:
        args.out.write_text(json.dumps({"cpu": describe(), "rounds": args.rounds, "results": raw}, indent=2))
        print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
