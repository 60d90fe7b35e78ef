"""`predict` as a stream against the engine it drives, measured in one run (ratios: the machine's noise hits both).

    .venv/bin/python benchmarks/predict_stream.py                 # ~2,000 photos and a 1280x720 video, 2 threads
    .venv/bin/python benchmarks/predict_stream.py --photos 500 --frames 150 --rounds 1   # quicker

1. Photos: the int8 ONNX ImageNet classifier (Google's uint8 MobileNetV2 1.0 TFLite from ../shared/data, converted,
   exported and quantized here) over a folder of ~2,000 JPEGs (hymenoptera photos cropped and resized to ~500x375,
   written to a temporary folder). Its raw batched throughput (batches of 32, preprocessed in advance) and `predict
   FOLDER --out DIR` end to end (finding the files, decoding, resizing, the model, writing JSONL and CSV) are timed
   interleaved, `--rounds` times; the figure is predict / raw.
2. Decoding threads vs processes: decode + resize of the photos with 2 threads and with 2 processes (each process
   opens the predictor once), without the model.
3. Video: SSDLite MobileNetV2 at 320 (random weights: speed does not depend on them; no box passes the score
   threshold, so tracking costs nothing), int8 ONNX, on a 1280x720 H.264 video made from the photos (a pan across
   each): raw batched frames/s, and `predict VIDEO --out DIR` without and with `--draw` (the annotated video).

Prints Markdown for benchmarks/README.md: the CPU line, the load average before and after, every figure.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import random
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from mobilenetv2.cli import main
from mobilenetv2.export.exporter import export_model
from mobilenetv2.formats.onnx import quantize_onnx
from mobilenetv2.hardware import describe
from mobilenetv2.inference import load_predictor
from mobilenetv2.inference.stream.decode import read_image
from mobilenetv2.models import create_model
from mobilenetv2.weights import load_checkpoint
from mobilenetv2.weights.checkpoint import CheckpointMeta

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
if not SHARED.is_dir():
    SHARED = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"


def load() -> str:
    return "load average " + ", ".join(f"{x:.2f}" for x in os.getloadavg())


def make_photos(folder: Path, count: int) -> list[Path]:
    """``count`` JPEGs: random crops (80-100% of each side) of the hymenoptera photos, resized to 500 px wide."""
    sources = sorted((SHARED / "hymenoptera_data").rglob("*.jpg"))
    rng, paths = random.Random(0), []
    while len(paths) < count:
        for src in sources[: count - len(paths)]:
            with Image.open(src) as im:
                im = im.convert("RGB")
            w, h = im.size
            cw, ch = int(w * rng.uniform(0.8, 1.0)), int(h * rng.uniform(0.8, 1.0))
            x, y = rng.randint(0, w - cw), rng.randint(0, h - ch)
            im = im.crop((x, y, x + cw, y + ch))
            scale = 500 / max(im.size)
            im = im.resize((round(im.width * scale), round(im.height * scale)), Image.BILINEAR)
            paths.append(folder / f"{len(paths):05d}.jpg")
            im.save(paths[-1], quality=90)
    return paths


def int8_classifier(work: Path, photos: list[Path]) -> Path:
    """Google's uint8 MobileNetV2 (TFLite) -> our checkpoint -> fp32 ONNX -> int8 ONNX calibrated on 64 photos."""
    ckpt = work / "imagenet.safetensors"
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(["-q", "convert", str(SHARED / "tflite" / "mobilenet_v2_1.0_224_quant.tflite"), str(ckpt),
                     "--labels", str(SHARED / "tflite" / "imagenet_labels.txt")]) == 0
    return quantized(load_checkpoint(ckpt).model, load_checkpoint(ckpt).meta, work / "imagenet", photos)


def quantized(model, meta: CheckpointMeta, stem: Path, photos: list[Path]) -> Path:
    fp32 = stem.with_suffix(".onnx")
    export_model(model.eval(), fp32, "onnx", meta=meta)
    predictor = load_predictor(fp32)
    batches = [np.concatenate([predictor.preprocess(str(p))[None] for p in photos[i:i + 16]]) for i in range(0, 64, 16)]
    return quantize_onnx(fp32, stem.with_name(stem.name + ".int8.onnx"), batches)


def raw_rate(predictor, batch: torch.Tensor, seconds: float = 3.0) -> float:
    """Inputs a second through the runtime alone, on a batch prepared in advance."""
    predictor.logits_of_pixels(batch)
    count, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        predictor.logits_of_pixels(batch)
        count += len(batch)
    return count / (time.perf_counter() - started)


def predict_rate(argv: list[str], count: int) -> float:
    """Inputs a second through ``mobilenetv2 predict`` (in this process: no interpreter start-up counted)."""
    started = time.perf_counter()
    with open(os.devnull, "w") as null, contextlib.redirect_stdout(null):
        code = main(["-q", "predict", *argv, "--overwrite"])
    assert code == 0, code
    return count / (time.perf_counter() - started)


_worker = None


def _open(path: str) -> None:
    global _worker
    torch.set_num_threads(1)
    _worker = load_predictor(path, threads=1)


def _prepare(path: str) -> torch.Tensor:
    array, full = read_image(path, path, _worker.decode_size)
    return _worker.prepare(array, original_size=full)[0]


def decode_rates(model: Path, photos: list[Path], workers: int = 2) -> dict[str, float]:
    """Decode + resize throughput (no model) with ``workers`` threads and with ``workers`` processes."""
    names, rates = [str(p) for p in photos], {}
    _open(str(model))
    for kind, pool in (("threads", ThreadPoolExecutor(workers)),
                       ("processes", ProcessPoolExecutor(workers, initializer=_open, initargs=(str(model),)))):
        with pool:
            list(pool.map(_prepare, names[:8]))  # start-up (a process opens the predictor) not counted
            started = time.perf_counter()
            for _ in pool.map(_prepare, names, chunksize=16):
                pass
            rates[kind] = len(names) / (time.perf_counter() - started)
    return rates


def make_video(path: Path, photos: list[Path], frames: int, fps: int = 30) -> Path:
    """1280x720 H.264: a slow pan across each photo (enlarged to 1600 px wide), 30 frames a photo."""
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps, options={"preset": "veryfast", "crf": "23"})
        stream.width, stream.height, stream.pix_fmt = 1280, 720, "yuv420p"
        for i in range(frames):
            if i % 30 == 0:
                with Image.open(photos[i // 30]) as im:
                    big = np.asarray(im.convert("RGB").resize((1600, 1200), Image.BILINEAR))
            x, y = (i % 30) * 10, (i % 30) * 8
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(big[y:y + 720, x:x + 1280]), "rgb24")
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


def int8_ssdlite(work: Path, photos: list[Path]) -> Path:
    torch.manual_seed(0)
    model = create_model("ssdlite_mobilenet_v2", num_classes=91)
    meta = CheckpointMeta.for_model(model)
    from dataclasses import replace

    meta = meta.replace(task="detection", class_names=["background"] + [f"class{i}" for i in range(1, 91)],
                        preprocessing=replace(meta.preprocessing, input_size=320, crop_pct=1.0, resize_mode="squash"))
    return quantized(model, meta, work / "ssdlite", photos)


def photos_section(args, work: Path) -> list[str]:
    folder = work / "photos"
    folder.mkdir()
    photos = make_photos(folder, args.photos)
    model = int8_classifier(work, photos)
    predictor = load_predictor(model, threads=args.threads, spin=False)
    batch = np.concatenate([predictor.prepare(str(p))[0] for p in photos[:32]])
    argv = [str(model), str(folder), "--out", str(work / "out"), "--threads", str(args.threads), "--batch-size", "32",
            "--format", "jsonl"]
    rounds = []
    for _ in range(args.rounds):
        before = raw_rate(predictor, batch)
        streamed = predict_rate(argv, len(photos))
        after = raw_rate(predictor, batch)
        rounds.append((streamed, (before + after) / 2))
    lines = ["| round | raw batched (images/s) | `predict` folder --out (images/s) | predict / raw |",
             "|---|---|---|---|"]
    lines += [f"| {i + 1} | {raw:.0f} | {streamed:.0f} | {streamed / raw:.0%} |" for i, (streamed, raw) in enumerate(rounds)]
    ratios = sorted(s / r for s, r in rounds)
    lines.append(f"\npredict / raw: **{ratios[0]:.0%} to {ratios[-1]:.0%}** ({len(photos):,} photos, "
                 f"{sum(p.stat().st_size for p in photos) / 1e6:.0f} MB, {args.threads} threads, batches of 32)")
    rates = decode_rates(model, photos[:400])
    lines.append(f"\ndecode + resize only, 2 workers: threads {rates['threads']:.0f} images/s, processes "
                 f"{rates['processes']:.0f} images/s")
    # the model and the decoding share the same cores: per image they cost 1/raw + 1/decode of them, in any overlap
    raw_mean = sum(r for _, r in rounds) / len(rounds)
    bound = 1 / (1 / raw_mean + 1 / rates["threads"])
    best = max(s for s, _ in rounds)
    lines.append(f"\nthe bound when decoding and the model share the {args.threads} cores: 1 / (1/raw + 1/decode) = "
                 f"{bound:.0f} images/s ({bound / raw_mean:.0%} of raw); `predict` reached {best / bound:.0%} of it")
    return lines


def video_section(args, work: Path) -> list[str]:
    photos = sorted((work / "photos").glob("*.jpg")) or make_photos(work / "photos", 64)
    video = make_video(work / "pan.mp4", photos, args.frames)
    model = int8_ssdlite(work, photos)
    predictor = load_predictor(model, threads=args.threads, spin=False)
    batch = np.concatenate([predictor.prepare(np.zeros((720, 1280, 3), np.uint8))[0] for _ in range(16)])
    argv = [str(model), str(video), "--out", str(work / "vout"), "--threads", str(args.threads), "--format", "table"]
    raw = raw_rate(predictor, batch)
    plain = predict_rate(argv, args.frames)
    drawn = predict_rate([*argv, "--draw"], args.frames)
    # random weights pass no box at the default threshold: 10 boxes a frame also exercise NMS, tracking and drawing
    boxes = ["--score-threshold", "0", "--max-detections", "10"]
    plain_boxes = predict_rate([*argv, *boxes], args.frames)
    drawn_boxes = predict_rate([*argv, *boxes, "--draw"], args.frames)
    raw = (raw + raw_rate(predictor, batch)) / 2
    return ["| path | frames/s |", "|---|---|", f"| SSDLite int8 raw batched (16 frames of 320x320) | {raw:.1f} |",
            f"| `predict` 1280x720 H.264 video, per-frame JSONL | {plain:.1f} |",
            f"| `predict --draw` (annotated H.264 video too) | {drawn:.1f} |",
            f"| `predict`, 10 boxes a frame tracked (`--score-threshold 0 --max-detections 10`) | {plain_boxes:.1f} |",
            f"| the same with `--draw` (boxes and track IDs drawn) | {drawn_boxes:.1f} |"]


def main_() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=2000)
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--skip-video", action="store_true")
    args = parser.parse_args()
    print(describe())
    print(load(), "(before)\n")
    with tempfile.TemporaryDirectory(prefix="predict-stream-") as tmp:
        work = Path(tmp)
        for line in photos_section(args, work):
            print(line, flush=True)
        if not args.skip_video:
            print()
            for line in video_section(args, work):
                print(line, flush=True)
    print(f"\n{load()} (after)")


if __name__ == "__main__":
    sys.exit(main_())
