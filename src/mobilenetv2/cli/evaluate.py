"""``mobilenetv2 evaluate``: accuracy, per-class scores, confusion matrix and calibration of a checkpoint on a dataset."""

from __future__ import annotations

import argparse
from typing import Any

from mobilenetv2.cli.common import add_backend_args, add_labels_arg


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("evaluate", help="a checkpoint's full report on a dataset (classification: top-1/top-5, per-class "
                                        "scores, calibration; segmentation: mIoU, per-class IoU, pixel accuracy; "
                                        "detection: COCO mAP)",
                       description="Evaluate a checkpoint on a dataset with the checkpoint's own preprocessing and task. "
                                   "Classification: top-1 and top-5 accuracy, per-class precision/recall/F1, macro and "
                                   "weighted averages, confusion matrix, most confused pairs and expected calibration "
                                   "error. Segmentation: mIoU, per-class IoU, pixel accuracy, frequency-weighted IoU and "
                                   "the confusion matrix on full-resolution masks (255 ignored), and the worst-predicted "
                                   "images. Detection: COCO mAP@[.5:.95], mAP@.5, mAP@.75, AP by object size, AR and "
                                   "per-class AP (pycocotools), precision-recall curves and the images with their true "
                                   "and predicted boxes, on whole images (tiles merged by NMS). Works under torchrun "
                                   "(results are gathered across processes).")
    p.add_argument("checkpoint", help="our .safetensors checkpoint, a run folder, or an exported file (.onnx, .pte, "
                                      ".tflite, .torchscript.pt, .pt2, OpenVINO .xml)")
    p.add_argument("--data", required=True, help="a folder (class sub-folders, or train/ + val/), a CSV of path,label, "
                                                 "'digits', or a torchvision dataset name")
    p.add_argument("--split", choices=["val", "train", "all"], default=None,
                   help="which images (default: val when the data has its own validation images — train/ + val/ "
                        "folders, a CSV split column, a torchvision dataset, the built-in digits' held-out share — "
                        "else all of them)")
    p.add_argument("--out", help="write report.md, report.json, confusion_matrix.csv and PNG plots to this folder")
    p.add_argument("--batch-size", type=int, default=64, help="images per batch (default 64)")
    p.add_argument("--workers", type=int, default=None, help="data loading processes (default: automatic)")
    p.add_argument("--val-split", type=float, default=0.2, help="validation fraction when the data has no val/ folder")
    p.add_argument("--seed", type=int, default=0, help="seed of that split (use the training run's)")
    p.add_argument("--data-root", default=None, help="where torchvision datasets live / CSV paths resolve")
    add_backend_args(p, "auto", "torch backend: auto (cuda if available; this process's GPU under torchrun), cpu, cuda:N")
    add_labels_arg(p)
    p.add_argument("--tile", type=int, default=None, help="detection: cut images larger than TILE pixels into tiles "
                                                          "(default: the training run's tile; 0: no tiles)")
    p.add_argument("--tile-overlap", type=float, default=None, help="detection: fraction of a tile shared with its "
                                                                    "neighbour (default: the training run's, 0.25)")
    p.add_argument("--json", action="store_true", help="print the full report as JSON (and nothing else) on stdout")
    return p


def run(args: argparse.Namespace) -> int:
    from mobilenetv2.errors import UserError
    from mobilenetv2.extras import available
    from mobilenetv2.io import check_writable

    if args.batch_size < 1:
        raise UserError(f"--batch-size must be >= 1, got {args.batch_size}")
    if args.out:
        check_writable(args.out, folder=True)
    if not available("torch"):
        return run_without_torch(args)
    import torch
    import torch.distributed as dist

    from mobilenetv2.distributed import init_distributed, local_device
    from mobilenetv2.evaluation.evaluator import evaluate
    from mobilenetv2.inference import load_predictor

    device = local_device(args.device)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    init_distributed(device.type)  # under torchrun: each process evaluates its share, predictions are gathered
    predictor = load_predictor(args.checkpoint, device=device, threads=args.threads, backend=args.backend,
                               labels=args.labels)
    predictor.configure(tile=args.tile, tile_overlap=args.tile_overlap)
    split = args.split or predictor.task.default_split(args.data, args.data_root)
    report = evaluate(predictor, args.data, split=split, batch_size=args.batch_size, workers=args.workers,
                      val_split=args.val_split, seed=args.seed, data_root=args.data_root, progress=True)
    if dist.is_available() and dist.is_initialized() and dist.get_rank() != 0:
        return 0
    return show(args, report, split)


def run_without_torch(args: argparse.Namespace) -> int:
    """An exported classifier on a labelled image folder, where torch is not installed (``evaluate_folder``)."""
    from mobilenetv2.evaluation.evaluator import evaluate_folder
    from mobilenetv2.inference import load_predictor

    predictor = load_predictor(args.checkpoint, threads=args.threads, backend=args.backend, labels=args.labels)
    report = evaluate_folder(predictor, args.data, args.split, batch_size=args.batch_size, val_split=args.val_split,
                             seed=args.seed, progress=True)
    return show(args, report, report.info["split"])


def show(args: argparse.Namespace, report: Any, split: str) -> int:
    """Print (and with --out, write) the report."""
    import logging

    from mobilenetv2.cli.common import print_json

    log = logging.getLogger("mobilenetv2.evaluate")
    report.info["model"] = args.checkpoint
    if args.split is None:
        log.info("evaluated the %s split of %s (%s; --split val|train|all to choose)", split, args.data,
                 "it has its own validation images" if split == "val" else "it has no separate validation folder")
    if args.out:
        report.write(args.out)
        log.info("report written to %s/ (report.md, report.json, confusion_matrix.csv, PNG plots)", args.out)
    if args.json:
        print_json(report.to_dict())
    else:
        print(report.to_markdown())
        print(report.summary())
    return 0
