"""``mobilenetv2 predict``: top-k labels and probabilities for image files, folders and globs."""

from __future__ import annotations

import argparse
import csv
import json
import logging
import sys
from pathlib import Path

from mobilenetv2.cli.common import add_backend_args, add_labels_arg


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("predict", help="predict with a checkpoint: top-k labels, masks (segmentation) or boxes (detection)",
                       description="Run a checkpoint on image files, folders (recursive) and glob patterns, using its own "
                                   "preprocessing and task: a classifier gives the top-k labels and probabilities; a "
                                   "segmentation model gives each image's mask (at the image's size) and the share of "
                                   "pixels in each class, and with --out writes the mask PNG (PASCAL palette) and an "
                                   "overlay; a detection model gives boxes, classes and scores (tiling large photos) and with "
                                   "--out draws them on the image. Unreadable files are reported on stderr and skipped; "
                                   "the exit code is 1 if any file failed.")
    p.add_argument("checkpoint", help="our .safetensors checkpoint, a run folder, or an exported file (.onnx, .pte, "
                                      ".tflite, .torchscript.pt, .pt2)")
    p.add_argument("images", nargs="+", help="image files, folders or glob patterns (quote globs)")
    add_backend_args(p)
    add_labels_arg(p)
    p.add_argument("--top-k", type=int, default=None, help="how many labels per image (segmentation: classes listed) "
                                                           "(default 5)")
    p.add_argument("--format", choices=["table", "jsonl", "csv"], default="table", help="output format (default table)")
    p.add_argument("--batch-size", type=int, default=32, help="images per forward pass (default 32)")
    p.add_argument("--tta", action="store_true", default=None,
                   help="test-time augmentation: average with the horizontally flipped image")
    p.add_argument("--score-threshold", type=float, default=None,
                   help="detection: keep boxes scoring at least this (default 0.3)")
    p.add_argument("--max-detections", type=int, default=None, help="detection: at most this many boxes an image (default 300)")
    p.add_argument("--tile", type=int, default=None, help="detection: cut images larger than TILE pixels into tiles, "
                                                          "boxes merged by NMS (default: the training run's tile; 0: none)")
    p.add_argument("--tile-overlap", type=float, default=None, help="detection: fraction of a tile shared with its "
                                                                    "neighbour (default: the training run's, 0.25)")
    p.add_argument("--out", metavar="DIR", help="also write each image's pictures (the prediction drawn on it; for "
                                                "segmentation the mask and the overlay), predictions.jsonl and "
                                                "predictions.csv, to this folder")
    return p


def run(args: argparse.Namespace) -> int:
    from mobilenetv2.data.images import BadImageError, find_images, load_image
    from mobilenetv2.errors import UserError
    from mobilenetv2.inference import load_predictor
    from mobilenetv2.io import check_writable

    if (args.top_k is not None and args.top_k < 1) or args.batch_size < 1:
        raise UserError(f"--top-k and --batch-size must be >= 1, got {args.top_k} and {args.batch_size}")
    if args.out:
        check_writable(args.out, folder=True)
    paths = find_images(args.images)
    if not paths:
        raise UserError(f"no images found in {' '.join(args.images)} (extensions: .jpg, .png, .bmp, .webp, ...)")
    predictor = load_predictor(args.checkpoint, device=args.device, threads=args.threads, backend=args.backend,
                               labels=args.labels)
    predictor.configure(top_k=args.top_k, tta=args.tta, score_threshold=args.score_threshold,
                        max_detections=args.max_detections, tile=args.tile, tile_overlap=args.tile_overlap)
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
        predictions_of_batch = predictor.run_predictions(images, args.batch_size, {}) if images else []
        for image, name, pred in zip(images, names, predictions_of_batch):
            pred.source = name
            predictions.append(pred)
            if args.out:
                predictor.task.save_prediction(image, pred, Path(args.out), f"{len(predictions):04d}_{Path(name).stem}")
    print_predictions(predictor.task, predictions, args.format)
    if args.out and predictions:
        write_prediction_files(predictor.task, predictions, Path(args.out))
    if failed:
        print(f"mobilenetv2 predict: {failed} of {len(paths)} files could not be read", file=sys.stderr)
    return 1 if failed else 0


def print_predictions(task, predictions: list, fmt: str) -> None:
    """The predictions on stdout as a table, JSON lines or CSV (columns from the task)."""
    from mobilenetv2.reporting import format_table

    if fmt == "jsonl":
        for p in predictions:
            print(json.dumps(p.to_json()))
    elif fmt == "csv":
        rows = [row for p in predictions for row in task.prediction_rows(p)]
        if rows:
            writer = csv.DictWriter(sys.stdout, fieldnames=list(rows[0]), lineterminator="\n")
            writer.writeheader()
            writer.writerows(rows)
    elif predictions:
        rows = [task.prediction_summary(p) for p in predictions]
        print(format_table(list(rows[0]), [list(r.values()) for r in rows]))


def write_prediction_files(task, predictions: list, out: Path) -> None:
    """OUT/predictions.jsonl and OUT/predictions.csv beside the pictures."""
    import io

    from mobilenetv2.io import atomic_write_text

    atomic_write_text(out / "predictions.jsonl", "".join(json.dumps(p.to_dict()) + "\n" for p in predictions))
    rows = [row for p in predictions for row in task.prediction_rows(p)]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]) if rows else ["image"], lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(out / "predictions.csv", buffer.getvalue())
    logging.getLogger("mobilenetv2.predict").info("pictures, predictions.jsonl and predictions.csv written to %s/", out)
