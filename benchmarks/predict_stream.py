"""`predict` against its bound on this machine, measured in one run (ratios: the machine's noise hits every part).

    .venv/bin/python benchmarks/predict_stream.py                 # 2,000 photos and a 1280x720 video, 2 threads
    .venv/bin/python benchmarks/predict_stream.py --photos 800 --rounds 1 --skip-video   # quicker

1. Photos: the int8 ONNX ImageNet classifier (Google's uint8 MobileNetV2 1.0 TFLite from ../shared/data, converted
   and quantized here by the CLI) over a folder of real JPEGs: links in a temporary folder to the shared photos
   (hymenoptera_data, the TFLite parrot), each photo several times under its own name, never copied. Each round
   measures, interleaved:
   - raw: the runtime alone (``predictor.runtime``, onnxruntime) on batches of 32 inputs prepared in advance;
   - decode: predict's own decoding (JPEG draft mode at ``Predictor.decode_size``, then ``prepare``: resize and crop)
     on 2 threads, without the model: the pipeline's own ``prepare`` over the folder's frames;
   - predict: ``mobilenetv2 predict MODEL FOLDER --out DIR`` as a subprocess, the process start included.
   On 2 cores the model and the decoding share the cores, so an image costs 1/raw + 1/decode of them in any overlap:
   the bound is 1/(1/raw + 1/decode), and the figure is predict / bound.
2. Where the rest goes (``--profile``): the same predict in this process under cProfile (the top functions by own
   time), and the start-up alone (`predict MODEL ONE_PHOTO`).
3. Video: SSDLite MobileNetV2 at 320 (random weights: speed does not depend on them; no box passes the score
   threshold, so tracking costs nothing), int8 ONNX, on a 1280x720 H.264 video made from the photos (a pan across
   each): raw batched frames/s, and `predict VIDEO --out DIR` without and with `--draw` (the annotated video).

Prints Markdown for benchmarks/README.md: the CPU line, the load average before and after, every figure.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import io
import os
import pstats
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import numpy as np
from PIL import Image

from mobilenetv2.cli import main
from mobilenetv2.hardware import describe
from mobilenetv2.inference import load_predictor
from mobilenetv2.inference.stream.frames import Frame
from mobilenetv2.inference.stream.pipeline import Pipeline, StreamOptions
from mobilenetv2.inference.stream.sources import ImageFiles
from mobilenetv2.inference.stream.sources.base import Context

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
if not SHARED.is_dir():
    SHARED = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
BATCH = 32


def load() -> str:
    return "load average " + ", ".join(f"{x:.2f}" for x in os.getloadavg())


def link_photos(folder: Path, count: int) -> list[Path]:
    """``count`` links to the shared real JPEGs (hymenoptera_data, the TFLite parrot), in turn, each under its own name."""
    sources = sorted((SHARED / "hymenoptera_data").rglob("*.jpg")) + sorted((SHARED / "tflite").glob("*.jpg"))
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"{i:05d}.jpg" for i in range(count)]
    for i, path in enumerate(paths):
        path.symlink_to(sources[i % len(sources)].resolve())
    return paths


def int8_classifier(work: Path) -> Path:
    """Google's uint8 MobileNetV2 (TFLite) -> our checkpoint -> int8 ONNX (``quantize``, 64 calibration photos)."""
    ckpt, int8 = work / "imagenet.safetensors", work / "imagenet.int8.onnx"
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(["-q", "convert", str(SHARED / "tflite" / "mobilenet_v2_1.0_224_quant.tflite"), str(ckpt),
                     "--labels", str(SHARED / "tflite" / "imagenet_labels.txt")]) == 0
        assert main(["-q", "quantize", str(ckpt), "--calib", str(SHARED / "hymenoptera_data" / "val"),
                     "--num-calib", "64", "--out", str(int8)]) == 0
    return int8


CPU_MS: dict[str, float] = {}  # CPU time an image (all threads): the same comparison, robust to other jobs' load


def raw_rate(runtime, batch: np.ndarray, seconds: float = 3.0) -> float:
    """Inputs a second through the runtime alone, on a normalised batch prepared in advance."""
    runtime(batch)
    count, started, cpu = 0, time.perf_counter(), time.process_time()
    while time.perf_counter() - started < seconds:
        runtime(batch)
        count += len(batch)
    CPU_MS["raw"] = 1000 * (time.process_time() - cpu) / count
    return count / (time.perf_counter() - started)


def decode_rate(predictor, folder: Path, threads: int) -> float:
    """Images a second through predict's own decoding (``Pipeline.prepare``: draft-mode JPEG decoding, resize, crop)
    on ``threads`` threads, without the model."""
    source = ImageFiles([str(folder)])
    frames = [f for f in source.frames(Context(predictor.decode_size)) if isinstance(f, Frame)]
    pipeline = Pipeline(predictor, [source], StreamOptions(workers=threads))
    try:
        with ThreadPoolExecutor(threads) as pool:
            started, cpu = time.perf_counter(), time.process_time()
            for _ in pool.map(lambda frame: pipeline.prepare(frame, source), frames):
                pass
            CPU_MS["decode"] = 1000 * (time.process_time() - cpu) / len(frames)
            return len(frames) / (time.perf_counter() - started)
    finally:
        pipeline.close()


def predict_command(model: Path, inputs: str, out: Path, threads: int) -> list[str]:
    """The user's command line, on the engine that raw measures (``--backend auto`` may pick OpenVINO for the file)."""
    return [sys.executable, "-m", "mobilenetv2", "-q", "predict", str(model), inputs, "--out", str(out), "--overwrite",
            "--threads", str(threads), "--batch-size", str(BATCH), "--format", "jsonl", "--backend", "onnxruntime"]


def predict_rate(command: list[str], count: int) -> float:
    """Images a second through ``mobilenetv2 predict`` in a new process: its start-up counted."""
    started, cpu = time.perf_counter(), children_cpu()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    CPU_MS["predict"] = 1000 * (children_cpu() - cpu) / count
    return count / (time.perf_counter() - started)


def children_cpu() -> float:
    """User + system CPU seconds of the finished child processes."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def normalised_batch(predictor, photos: list[Path]) -> np.ndarray:
    """``BATCH`` real photos as the model's normalised float32 input."""
    parts = [predictor.prepare(Image.open(p).convert("RGB"))[0] for p in photos[:BATCH]]
    return np.ascontiguousarray(np.asarray(predictor.normalize(np.concatenate([np.asarray(x) for x in parts]))),
                                dtype=np.float32)


def photos_section(args, work: Path) -> list[str]:
    folder = work / "photos"
    photos = link_photos(folder, args.photos)
    model = args.model or int8_classifier(work)
    predictor = load_predictor(model, threads=args.threads, spin=False, backend="onnxruntime")
    batch = normalised_batch(predictor, photos)
    command = predict_command(model, str(folder), work / "out", args.threads)
    rounds = []
    for _ in range(args.rounds):
        raw = raw_rate(predictor.runtime, batch)
        decode = decode_rate(predictor, folder, args.threads)
        streamed = predict_rate(command, len(photos))
        cpu = CPU_MS["raw"] + CPU_MS["decode"], CPU_MS["predict"]
        raw = (raw + raw_rate(predictor.runtime, batch)) / 2
        rounds.append((raw, decode, streamed, 1 / (1 / raw + 1 / decode), *cpu))
    lines = ["| round | raw: runtime alone, batches of 32 (images/s) | decode: predict's decoding, 2 threads (images/s) "
             "| bound 1/(1/raw + 1/decode) | `predict FOLDER --out DIR`, process start included (images/s) "
             "| predict / bound | CPU an image: raw + decode, predict (ms) |", "|---|---|---|---|---|---|---|"]
    lines += [f"| {i + 1} | {raw:.0f} | {decode:.0f} | {bound:.0f} | {streamed:.0f} | **{streamed / bound:.2f}x** "
              f"| {bound_cpu:.2f}, {predict_cpu:.2f} ({bound_cpu / predict_cpu:.2f}x) |"
              for i, (raw, decode, streamed, bound, bound_cpu, predict_cpu) in enumerate(rounds)]
    ratios = [r[2] / r[3] for r in rounds]
    lines.append(f"\npredict / bound: median **{statistics.median(ratios):.2f}x** (range {min(ratios):.2f}-{max(ratios):.2f}x;"
                 f" {len(photos):,} photos, {sum(p.stat().st_size for p in photos) / 1e6:.0f} MB, {args.threads} threads,"
                 f" batches of {BATCH})")
    if args.profile:
        lines += profile_section(model, photos, folder, work, args.threads)
    return lines


def profile_section(model: Path, photos: list[Path], folder: Path, work: Path, threads: int) -> list[str]:
    """Where predict's time goes: its start on one photo (a new process), and the run in this process under cProfile."""
    starts = [1 / predict_rate(predict_command(model, str(photos[0]), work / "one", threads), 1) for _ in range(3)]
    profiler = cProfile.Profile()
    with open(os.devnull, "w") as null, contextlib.redirect_stdout(null):
        profiler.runcall(main, predict_command(model, str(folder), work / "prof", threads)[3:])
    text = io.StringIO()
    pstats.Stats(profiler, stream=text).sort_stats("tottime").print_stats(15)
    return [f"\nstart-up, `predict MODEL ONE_PHOTO` (a new process): median {statistics.median(starts):.2f} s",
            "\ncProfile of the same predict in this process (the main thread's view; the decoding threads and the model"
            " thread are not profiled, their waits show as lock waits):\n", "```", text.getvalue().strip(), "```"]


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
    """A random-weight SSDLite at 320 (speed does not depend on the weights), int8 ONNX calibrated on 64 photos."""
    import torch

    from mobilenetv2.export.exporter import export_model
    from mobilenetv2.formats.onnx import quantize_onnx
    from mobilenetv2.models import create_model
    from mobilenetv2.weights.checkpoint import CheckpointMeta

    torch.manual_seed(0)
    model = create_model("ssdlite_mobilenet_v2", num_classes=91)
    meta = CheckpointMeta.for_model(model)
    meta = meta.replace(task="detection", class_names=["background"] + [f"class{i}" for i in range(1, 91)],
                        preprocessing=replace(meta.preprocessing, input_size=320, crop_pct=1.0, resize_mode="squash"))
    fp32 = work / "ssdlite.onnx"
    export_model(model.eval(), fp32, "onnx", meta=meta)
    predictor = load_predictor(fp32)
    batches = [normalised_batch(predictor, photos[i:i + 16]) for i in range(0, 64, 16)]
    return quantize_onnx(fp32, work / "ssdlite.int8.onnx", batches)


def video_section(args, work: Path) -> list[str]:
    photos = sorted((work / "photos").glob("*.jpg")) or link_photos(work / "photos", 64)
    video = make_video(work / "pan.mp4", photos, args.frames)
    model = int8_ssdlite(work, photos)
    predictor = load_predictor(model, threads=args.threads, spin=False)
    frame = np.zeros((720, 1280, 3), np.uint8)
    batch = np.concatenate([np.asarray(predictor.normalize(predictor.prepare(frame)[0]), np.float32)] * 16)
    command = [*predict_command(model, str(video), work / "vout", args.threads)[:-2], "--format", "table"]
    raw = raw_rate(predictor.runtime, batch)
    plain = predict_rate(command, args.frames)
    drawn = predict_rate([*command, "--draw"], args.frames)
    # random weights pass no box at the default threshold: 10 boxes a frame also exercise NMS, tracking and drawing
    boxes = ["--score-threshold", "0", "--max-detections", "10"]
    plain_boxes = predict_rate([*command, *boxes], args.frames)
    drawn_boxes = predict_rate([*command, *boxes, "--draw"], args.frames)
    raw = (raw + raw_rate(predictor.runtime, batch)) / 2
    return ["| path (process start included) | frames/s |", "|---|---|",
            f"| SSDLite int8 raw batched (16 frames of 320x320) | {raw:.1f} |",
            f"| `predict` 1280x720 H.264 video, per-frame JSONL | {plain:.1f} |",
            f"| `predict --draw` (annotated H.264 video too) | {drawn:.1f} |",
            f"| `predict`, 10 boxes a frame tracked (`--score-threshold 0 --max-detections 10`) | {plain_boxes:.1f} |",
            f"| the same with `--draw` (boxes and track IDs drawn) | {drawn_boxes:.1f} |"]


def main_() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=2000, help="links to real JPEGs in the folder (default 2000)")
    parser.add_argument("--model", type=Path, help="an int8 .onnx classifier (default: converted and quantized here)")
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--profile", action="store_true", help="also the start-up and a cProfile of predict")
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
