"""Fine-tuning DeepLabv3-MobileNetV2 on a small set of real pixels: three starting points, the same budget.

The only real photo with a ground-truth mask offline is the PASCAL bird (``../shared/data/segmentation``), so the
set is built from real pixels: the bird, cut out by its true mask, pasted at random scale, position and flip onto
real photos (hymenoptera train photos for training, val photos for validation), with exact masks (background, bird).
Three ``mobilenetv2 train --task segmentation`` runs with the same epochs: from scratch, from the converted ImageNet
classifier's backbone, and from the converted PASCAL DeepLab (its 21 classes replaced by these 2). Each is then
evaluated on the composited validation set and on the untouched real bird photo with its true mask.

    python benchmarks/segmentation_finetune.py [--epochs 6] [--input-size 256] [--out runs/segmentation-finetune]
"""

from __future__ import annotations

import argparse
import shlex
import time
from pathlib import Path

import numpy as np
from PIL import Image

from mobilenetv2.cli import main

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
BIRD = 3  # the bird's class in PASCAL numbering


def cut_out_bird() -> tuple[Image.Image, np.ndarray]:
    """The bird photo cropped to the bird, and its alpha (1 where the mask says bird)."""
    seg = DATA / "segmentation"
    photo = np.asarray(Image.open(seg / "bird_segmentation.bmp").convert("RGB"))
    mask = np.asarray(Image.open(seg / "bird_segmentation_mask.bmp")) == BIRD
    ys, xs = np.nonzero(mask)
    box = (ys.min(), ys.max() + 1, xs.min(), xs.max() + 1)
    return Image.fromarray(photo[box[0]:box[1], box[2]:box[3]]), mask[box[0]:box[1], box[2]:box[3]]


def composite(background: Path, bird: Image.Image, alpha: np.ndarray, rng: np.random.Generator, size: int
              ) -> tuple[Image.Image, Image.Image]:
    """The bird pasted on ``background`` (resized to size x size), and the exact 0/1 mask."""
    canvas = Image.open(background).convert("RGB").resize((size, size), Image.BILINEAR)
    scale = rng.uniform(0.25, 0.7) * size / max(bird.size)
    w, h = max(8, int(bird.width * scale)), max(8, int(bird.height * scale))
    piece = bird.resize((w, h), Image.BILINEAR)
    keep = Image.fromarray((alpha * 255).astype(np.uint8)).resize((w, h), Image.NEAREST)
    if rng.random() < 0.5:
        piece, keep = piece.transpose(Image.FLIP_LEFT_RIGHT), keep.transpose(Image.FLIP_LEFT_RIGHT)
    x, y = int(rng.integers(0, size - w + 1)), int(rng.integers(0, size - h + 1))
    canvas.paste(piece, (x, y), keep)
    mask = Image.new("L", (size, size), 0)
    mask.paste(Image.fromarray((np.asarray(keep) > 127).astype(np.uint8)), (x, y))
    return canvas, mask


def build_set(root: Path, per_split: dict[str, int], size: int, seed: int = 0) -> Path:
    """root/{train,val}/{images,masks} and root/classes.txt, the backgrounds from hymenoptera's own splits."""
    bird, alpha = cut_out_bird()
    rng = np.random.default_rng(seed)
    for split, count in per_split.items():
        backgrounds = sorted((DATA / "hymenoptera_data" / split).rglob("*.jpg"))[:count]
        for folder in ("images", "masks"):
            (root / split / folder).mkdir(parents=True, exist_ok=True)
        for path in backgrounds:
            image, mask = composite(path, bird, alpha, rng, size)
            image.save(root / split / "images" / f"{path.stem}.jpg", quality=92)
            mask.save(root / split / "masks" / f"{path.stem}.png")
    (root / "classes.txt").write_text("background\nbird\n")
    return root


def real_bird(root: Path) -> Path:
    """The untouched bird photo and its true mask as a one-image set (PASCAL's 3 -> 1, edge pixels 1/2 ignored)."""
    seg = DATA / "segmentation"
    mask = np.asarray(Image.open(seg / "bird_segmentation_mask.bmp")).astype(np.uint8)
    mask = np.where(mask == BIRD, 1, np.where(mask == 0, 0, 255)).astype(np.uint8)
    for folder in ("images", "masks"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    Image.open(seg / "bird_segmentation.bmp").convert("RGB").save(root / "images" / "bird.png")
    Image.fromarray(mask).save(root / "masks" / "bird.png")
    (root / "classes.txt").write_text("background\nbird\n")
    return root


def run(argv: list[str]) -> float:
    print("$ mobilenetv2 " + shlex.join(argv), flush=True)
    start = time.perf_counter()
    if main(argv) != 0:
        raise SystemExit(f"failed: mobilenetv2 {shlex.join(argv)}")
    return time.perf_counter() - start


def evaluate(checkpoint: Path, data: Path, out: Path) -> dict:
    import json

    run(["evaluate", str(checkpoint), "--data", str(data), "--split", "val" if (data / "val").is_dir() else "all",
         "--out", str(out)])
    return json.loads((out / "report.json").read_text())


def main_benchmark() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=6, help="epochs per run, the same for all (default 6)")
    parser.add_argument("--input-size", type=int, default=256, help="training crop and evaluation size (default 256)")
    parser.add_argument("--images", type=int, default=120, help="training composites (default 120; val: 60)")
    parser.add_argument("--out", type=Path, default=Path("runs/segmentation-finetune"))
    args = parser.parse_args()
    if not (DATA / "segmentation").is_dir() or not (DATA / "hymenoptera_data").is_dir():
        raise SystemExit(f"needs {DATA}/segmentation and {DATA}/hymenoptera_data (the shared real data)")
    from mobilenetv2.hardware import describe

    data = build_set(args.out / "data", {"train": args.images, "val": args.images // 2}, args.input_size)
    bird = real_bird(args.out / "bird")
    tfl, seg = DATA / "tflite", DATA / "segmentation"
    imagenet, pascal = args.out / "imagenet.safetensors", args.out / "pascal.safetensors"
    run(["convert", str(tfl / "mobilenet_v2_1.0_224_quant.tflite"), str(imagenet), "--labels", str(tfl / "imagenet_labels.txt"),
         "--drop-background", "--calibrate", str(data / "train" / "images")])
    run(["convert", str(seg / "deeplabv3_mnv2_pascal_quant.tflite"), str(pascal), "--labels",
         str(seg / "pascal_voc_segmentation_labels.txt")])
    common = ["train", "--task", "segmentation", "--data", str(data), "--epochs", str(args.epochs), "--input-size",
              str(args.input_size), "--batch-size", "8", "--seed", "0", "--no-progress"]
    starts = {"from scratch": ["--lr", "0.05"],
              "ImageNet backbone (converted TFLite)": ["--pretrained", str(imagenet), "--lr", "0.01"],
              "PASCAL DeepLabv3 (converted TFLite)": ["--pretrained", str(pascal), "--lr", "0.005"]}
    rows = []
    for i, (name, flags) in enumerate(starts.items()):
        out = args.out / f"run{i}"
        seconds = run([*common, *flags, "--out", str(out)])
        val = evaluate(out / "best.safetensors", data, out / "eval-val")
        real = evaluate(out / "best.safetensors", bird, out / "eval-bird")
        rows.append((name, val["miou"], val["per_class"][1]["iou"], real["per_class"][1]["iou"], seconds))
    print(f"\n{describe()}")
    print(f"{args.images} training / {args.images // 2} validation composites at {args.input_size}px, {args.epochs} epochs\n")
    print("| start | val mIoU | val bird IoU | bird IoU on the real photo | train time (s) |\n|---|---|---|---|---|")
    for name, miou, val_bird, real_bird_iou, seconds in rows:
        print(f"| {name} | {miou:.1%} | {val_bird or 0:.1%} | {real_bird_iou or 0:.1%} | {seconds:.0f} |")


if __name__ == "__main__":
    main_benchmark()
