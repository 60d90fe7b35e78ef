"""``mobilenetv2 predict``: predictions for image files, folders, globs, list files, videos, cameras and streams."""

from __future__ import annotations

import argparse
from pathlib import Path

from mobilenetv2.cli.common import add_backend_args, add_labels_arg


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("predict", help="predict with a checkpoint: top-k labels, masks (segmentation) or boxes (detection)",
                       description="Run a checkpoint on image files, folders (recursive), glob patterns, list files (one "
                                   "path a line), videos (mp4, mkv, webm, avi, mov), cameras (/dev/video0) and streams "
                                   "(rtsp://, http(s)://), using its own preprocessing and task: a classifier gives the "
                                   "top-k labels; a segmentation model each image's mask and the share of pixels in each "
                                   "class; a detection model boxes, classes and scores (tiling large photos; track IDs "
                                   "across the frames of a video). Decoding runs beside the model. With --out, "
                                   "predictions are appended batch by batch to predictions.jsonl and .csv, and running "
                                   "the same command again resumes where it stopped. Unreadable files are reported on "
                                   "stderr and skipped; the exit code is 1 if any input failed.")
    p.add_argument("checkpoint", help="our .safetensors checkpoint, a run folder, or an exported file (.onnx, .pte, "
                                      ".tflite, .torchscript.pt, .pt2)")
    p.add_argument("images", nargs="+", help="image files, folders, glob patterns (quote them), list files (.txt), "
                                             "videos, camera devices (/dev/video0) or stream URLs (rtsp://, http://)")
    add_backend_args(p)
    add_labels_arg(p)
    p.add_argument("--top-k", type=int, default=None, help="how many labels per image (segmentation: classes listed) "
                                                           "(default 5)")
    p.add_argument("--format", choices=["table", "jsonl", "csv"], default="table",
                   help="output format on stdout (default table; videos: jsonl gives one line per frame, table one "
                        "summary line per video)")
    p.add_argument("--batch-size", type=int, default=32, help="images per forward pass (default 32)")
    p.add_argument("--workers", type=int, default=None, help="decoding threads beside the model (default: the cores, "
                                                             "at most 4)")
    p.add_argument("--tta", action="store_true", default=None,
                   help="test-time augmentation: average with the horizontally flipped image")
    p.add_argument("--score-threshold", type=float, default=None,
                   help="detection: keep boxes scoring at least this (default 0.3)")
    p.add_argument("--max-detections", type=int, default=None, help="detection: at most this many boxes an image (default 300)")
    p.add_argument("--tile", type=int, default=None, help="detection: cut images larger than TILE pixels into tiles, "
                                                          "boxes merged by NMS (default: the training run's tile; 0: none)")
    p.add_argument("--tile-overlap", type=float, default=None, help="detection: fraction of a tile shared with its "
                                                                    "neighbour (default: the training run's, 0.25)")
    p.add_argument("--out", metavar="DIR", help="write predictions.jsonl and predictions.csv (appended batch by batch), "
                                                "videos/NAME.jsonl per video or stream (a line per frame), and for a "
                                                "segmentation model each image's mask (NNNN_name_mask.png, pixel values "
                                                "= class indices), to this folder; the same command run again skips "
                                                "what it holds")
    p.add_argument("--draw", action="store_true", help="with --out: also draw the predictions: a picture per image "
                                                       "(NNNN_name.png; segmentation: NNNN_name_overlay.png) and an "
                                                       "annotated video per video or stream (videos/NAME.mp4)")
    p.add_argument("--parquet", action="store_true", help="with --out: also write predictions.parquet (for large runs)")
    p.add_argument("--overwrite", action="store_true", help="with --out: start again instead of resuming")
    p.add_argument("--vid-stride", type=int, default=1, metavar="N", help="predict every Nth frame of a video or stream "
                                                                          "(default 1: every frame)")
    p.add_argument("--max-frames", type=int, default=None, help="stop each video or stream after this many frames")
    p.add_argument("--log-interval", type=float, default=10.0, metavar="S",
                   help="seconds between progress lines when stderr is not a terminal (default 10)")
    p.add_argument("--ray", nargs="?", const="local", default=None, metavar="ADDRESS",
                   help="predict the image files on a Ray cluster (Ray Data, an actor pool of predictors), run from "
                        "a node of the cluster: ADDRESS 'auto' or HOST:6379, or none for a Ray instance on this machine "
                        "(Ray Client, ray://, cannot run Ray Data)")
    p.add_argument("--ray-actors", type=int, default=None, metavar="N",
                   help="with --ray: predictors in the actor pool (default: the cluster's CPUs / --threads)")
    return p


def run(args: argparse.Namespace) -> int:
    """Predict; with --out, as the folder's only writer (a second predict on it is refused, naming the first's PID)."""
    from mobilenetv2.io import FolderLock, check_writable

    if not args.out:
        return predict(args)
    check_writable(args.out, folder=True)
    with FolderLock(args.out, "mobilenetv2 predict"):
        return predict(args)


def predict(args: argparse.Namespace) -> int:
    from mobilenetv2.errors import UserError
    from mobilenetv2.inference import load_predictor
    from mobilenetv2.inference.stream import StreamOptions, open_sources
    from mobilenetv2.inference.stream.resume import Done
    from mobilenetv2.inference.stream.run import Outputs, count_inputs, run_prediction

    if (args.top_k is not None and args.top_k < 1) or args.batch_size < 1:
        raise UserError(f"--top-k and --batch-size must be >= 1, got {args.top_k} and {args.batch_size}")
    options = StreamOptions(args.batch_size, args.workers, vid_stride=args.vid_stride, max_frames=args.max_frames)
    options.check()
    for flag in ("draw", "parquet", "overwrite"):
        if getattr(args, flag) and not args.out:
            raise UserError(f"--{flag} needs --out DIR (where the files go)")
    sources = open_sources(args.images, remote=args.ray is not None)
    if args.ray is None and count_inputs(sources, Done(), 1)[0] == 0:
        raise UserError(f"no images found in {' '.join(args.images)} (extensions: .jpg, .png, .bmp, .webp, ...)")
    predictor = load_predictor(args.checkpoint, device=args.device, threads=args.threads, backend=args.backend,
                               spin=False, labels=args.labels)
    overrides = dict(top_k=args.top_k, tta=args.tta, score_threshold=args.score_threshold,
                     max_detections=args.max_detections, tile=args.tile, tile_overlap=args.tile_overlap)
    predictor.configure(**overrides)
    # the backend asked for, not the one auto picked: a rerun that times again may pick another, and still resumes
    settings = {"model": str(Path(args.checkpoint).resolve()), "backend": args.backend,
                "options": {k: v for k, v in predictor.settings.items()}, "vid_stride": args.vid_stride}
    outputs = Outputs(args.format, Path(args.out) if args.out else None, args.draw, args.parquet, args.overwrite,
                      settings, args.log_interval)
    if args.ray is not None:
        from mobilenetv2.inference.stream.ray_data import predict_on_ray

        report = predict_on_ray(args.checkpoint, sources, outputs, address=args.ray, actors=args.ray_actors,
                                batch_size=args.batch_size, backend=args.backend, threads=args.threads,
                                options=predictor.settings, labels=args.labels)
    else:
        report = run_prediction(predictor, sources, options, outputs)
    if report.interrupted and not all(s.live for s in sources):
        return 130
    return 1 if report.failed else 0
