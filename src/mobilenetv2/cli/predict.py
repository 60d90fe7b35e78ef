"""``mobilenetv2 predict``: top-k labels and probabilities for image files, folders and globs."""

from __future__ import annotations

import argparse
import csv
import json
import logging
import sys
from pathlib import Path


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("predict", help="classify images with a checkpoint (top-k labels and probabilities)",
                       description="Classify image files, folders (recursive) and glob patterns with a checkpoint, using "
                                   "its own preprocessing. Unreadable files are reported on stderr and skipped; the exit "
                                   "code is 1 if any file failed.")
    p.add_argument("checkpoint", help="our .safetensors checkpoint, a run folder, an .onnx file, or an ExecuTorch .pte program")
    p.add_argument("images", nargs="+", help="image files, folders or glob patterns (quote globs)")
    p.add_argument("--top-k", type=int, default=5, help="how many labels per image (default 5)")
    p.add_argument("--format", choices=["table", "jsonl", "csv"], default="table", help="output format (default table)")
    p.add_argument("--batch-size", type=int, default=32, help="images per forward pass (default 32)")
    p.add_argument("--tta", action="store_true", help="test-time augmentation: average with the horizontally flipped image")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: cuda when available)")
    p.add_argument("--out", metavar="DIR", help="also write each image with its prediction drawn on it, and "
                                                "predictions.jsonl, to this folder")
    return p


def run(args: argparse.Namespace) -> int:
    from mobilenetv2.data.images import BadImageError, find_images, load_image
    from mobilenetv2.errors import UserError
    from mobilenetv2.evaluation import Classifier
    from mobilenetv2.io import check_writable
    from mobilenetv2.reporting import format_table

    if args.top_k < 1 or args.batch_size < 1:
        raise UserError(f"--top-k and --batch-size must be >= 1, got {args.top_k} and {args.batch_size}")
    if args.out:
        check_writable(args.out, folder=True)
    paths = find_images(args.images)
    if not paths:
        raise UserError(f"no images found in {' '.join(args.images)} (extensions: .jpg, .png, .bmp, .webp, ...)")
    classifier = Classifier.load(args.checkpoint, device=args.device)
    predictions, failed = [], 0
    for start in range(0, len(paths), args.batch_size):
        images, names = [], []
        for path in paths[start:start + args.batch_size]:
            try:
                images.append(load_image(path))
                names.append(str(path))
            except BadImageError as exc:
                failed += 1
                print(f"mobilenetv2 predict: error: {exc}", file=sys.stderr)
        for image, name, pred in zip(images, names, classifier.predict(images, top_k=args.top_k, tta=args.tta) if images else []):
            pred.source = name
            predictions.append(pred)
            if args.out:
                write_picture(classifier, image, pred, Path(args.out), len(predictions))
    if args.format == "jsonl":
        for p in predictions:
            print(json.dumps({"image": p.source, "labels": p.labels, "indices": p.indices,
                              "probabilities": [round(x, 6) for x in p.probabilities]}))
    elif args.format == "csv":
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(["image", "rank", "label", "index", "probability"])
        for p in predictions:
            for rank, (label, index, prob) in enumerate(zip(p.labels, p.indices, p.probabilities), 1):
                writer.writerow([p.source, rank, label, index, f"{prob:.6f}"])
    elif predictions:
        print(format_table(["image", "label", "probability", f"top {len(predictions[0].labels)}"],
                           [[p.source, p.label, f"{p.probability:.4f}",
                             ", ".join(f"{lab} {prob:.3f}" for lab, prob in zip(p.labels, p.probabilities))]
                            for p in predictions]))
    if args.out and predictions:
        from mobilenetv2.io import atomic_write_text

        atomic_write_text(Path(args.out) / "predictions.jsonl", "".join(json.dumps(p.to_dict()) + "\n" for p in predictions))
        logging.getLogger("mobilenetv2.predict").info("pictures and predictions.jsonl written to %s/", args.out)
    if failed:
        print(f"mobilenetv2 predict: {failed} of {len(paths)} files could not be read", file=sys.stderr)
    return 1 if failed else 0


def write_picture(classifier, image, prediction, out: Path, number: int) -> None:
    """The task's picture of ``prediction`` on ``image``, as OUT/NNNN_<name>.png (numbered: names may repeat)."""
    from mobilenetv2.io import atomic_path

    picture = classifier.task.visualise(image, prediction)
    with atomic_path(out / f"{number:04d}_{Path(prediction.source).stem}.png") as tmp:
        picture.save(tmp, format="PNG")
