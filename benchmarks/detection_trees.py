"""Tree crowns in aerial photos: SSDLite-MobileNetV2 from the converted ImageNet backbone, from TF's SSDLite person
detector (converted from its frozen graph), from scratch, and torchvision's ``ssdlite320_mobilenet_v3_large`` from
scratch, with the same data, tiles, epochs and optimizer.

The data is ``../shared/data/trees`` (NEON photos with hand-drawn crowns). The stated split: the right part of the
large 1249x1035 YELL photo (columns 700 on, 120 crowns) validates; its left part (159 crowns) and the two 400x400
photos (OSBS_029: 61 crowns; SOAP_061: 37) train. Every crown is one class, "Tree" (SOAP's Alive/Dead become Tree).
(With the whole YELL photo for validation the models would see 98 training crowns from two other sites: cross-site
transfer at that size measures nothing but noise; see benchmarks/README.md.) Crowns are 15-64 px, so every photo is cut
into 200 px tiles (25% overlap) that the models see at 320 px; validation runs over the YELL part's tiles and scores
it whole (detections merged across tiles by NMS) with COCO mAP (pycocotools). ``--prepare DIR`` only writes the
split (DIR/train.csv, DIR/val.csv and the two YELL parts) for `mobilenetv2 train --task detection --data DIR`.
``--holdout PHOTO`` scores a new site instead: the YELL photo's left part and the other 400 px photo train, PHOTO
(OSBS_029 or SOAP_061, never seen in training) validates.

    python benchmarks/detection_trees.py [--epochs 40] [--starts person imagenet scratch torchvision]
        [--holdout OSBS_029] [--person PEOPLE.safetensors] [--threads 2] [--out runs/detection-trees]
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import tempfile
import time
from pathlib import Path

import torch
from PIL import Image

from mobilenetv2.data.detection.loaders import build_detection_data
from mobilenetv2.data.detection.sources import parse_voc_xml
from mobilenetv2.evaluation.evaluator import evaluate
from mobilenetv2.hardware import describe
from mobilenetv2.inference import load_predictor
from mobilenetv2.tasks.detection.boxes import Detections, to_image
from mobilenetv2.tasks.detection.metrics import ImageDetections, coco_figures
from mobilenetv2.training import TrainConfig, train
from mobilenetv2.training.defaults import resolve_defaults
from mobilenetv2.training.loop import data_config
from mobilenetv2.training.optim import lr_factor

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
TRAIN, VAL = ("OSBS_029", "SOAP_061"), "2019_YELL_2_541000_4977000_image_crop"
CUT = 700  # the YELL photo's columns left of this train (159 crowns), the rest validates (120 crowns)
TFLITE = DATA / "tflite" / "mobilenet_v2_1.0_224_quant.tflite"
PERSON_GRAPH = DATA / "people" / "ssdlite_pedestrians" / "frozen_inference_graph.pb"
LABELS = {"person": "ours (ssdlite_mobilenet_v2), TF's SSDLite person detector (frozen graph converted)",
          "imagenet": "ours (ssdlite_mobilenet_v2), converted ImageNet backbone",
          "scratch": "ours (ssdlite_mobilenet_v2), from scratch",
          "torchvision": "torchvision ssdlite320_mobilenet_v3_large, from scratch"}


def prepare(folder: Path, holdout: str | None = None) -> Path:
    """folder/train.csv and folder/val.csv (one class) and the two parts of the YELL photo as PNGs; the other photos
    are named by their absolute paths (nothing of the shared data is copied into the project). With ``holdout`` that
    400 px photo alone validates and the YELL photo's right part is left out."""
    folder.mkdir(parents=True, exist_ok=True)
    rows: dict[str, list] = {"train": [], "val": []}
    for stem in TRAIN:
        raw = parse_voc_xml(DATA / "trees" / f"{stem}.xml", DATA / "trees" / f"{stem}.png")
        rows["val" if stem == holdout else "train"] += [[str(raw.path), *box] for box in raw.boxes]
    raw = parse_voc_xml(DATA / "trees" / f"{VAL}.xml", DATA / "trees" / f"{VAL}.png")
    photo = Image.open(raw.path).convert("RGB")
    parts = (("train", (0, CUT)),) if holdout else (("train", (0, CUT)), ("val", (CUT, photo.width)))
    for split, (x0, x1) in parts:
        part = folder / f"{VAL}_{split}.png"
        photo.crop((x0, 0, x1, photo.height)).save(part)
        for box in raw.boxes:  # a crown belongs to the part that holds its centre, clipped to it
            if x0 <= (box[0] + box[2]) / 2 < x1:
                rows[split].append([str(part), max(box[0], x0) - x0, box[1], min(box[2], x1) - x0, box[3]])
    for split, found in rows.items():
        with (folder / f"{split}.csv").open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["path", "xmin", "ymin", "xmax", "ymax", "label"])
            writer.writerows([path, *(round(v) for v in box), "Tree"] for path, *box in found)
    return folder


def options(args: argparse.Namespace, data: Path, out: Path) -> dict:
    return dict(task="detection", data=str(data), out=str(out), epochs=args.epochs, batch_size=args.batch_size,
                input_size=args.input_size, tile=args.tile, tile_overlap=0.25, workers=0, device="cpu",
                progress=False, seed=args.seed, warmup_epochs=1.0)


def run_ours(args: argparse.Namespace, data: Path, out: Path, pretrained: str | None) -> dict:
    # fine-tuning: the pretrained backbone learns at a tenth of the rate of the new layers (the usual practice)
    tuning = {"backbone_lr_mult": 0.1} if pretrained else {}
    result = train(TrainConfig(pretrained=pretrained, **tuning, **options(args, data, out)))
    seconds = sum(h["train_images"] / h["images_per_s"] for h in result.history)  # training passes only
    # the last epoch's weights, as for torchvision's model (the best epoch would be chosen on the validation photo)
    report = evaluate(load_predictor(result.run_dir / "last.safetensors", device="cpu"), str(data), split="val",
                      batch_size=8, workers=0)
    return figures(report.figures, seconds, len(result.history))


def figures(found: dict, seconds: float, epochs: int) -> dict:
    return {"map": max(found["map"], 0.0), "map50": max(found["map_50"], 0.0), "map75": max(found["map_75"], 0.0),
            "ar300": max(found.get("mar_300", 0.0), 0.0), "train_s": round(seconds, 1), "epochs": epochs}


def run_torchvision(args: argparse.Namespace, data: Path) -> dict:
    """torchvision's ssdlite320_mobilenet_v3_large from scratch on our loaders (the same tiles and augmentation), with
    its own loss, AdamW and our warm-up + cosine schedule, scored like ours."""
    from torchvision.models.detection import ssdlite320_mobilenet_v3_large

    torch.manual_seed(args.seed)
    cfg = resolve_defaults(TrainConfig(**options(args, data, Path(tempfile.mkdtemp()))))
    loaders = build_detection_data(data_config(cfg))
    mean = torch.tensor(loaders.preprocessing.mean).view(1, 3, 1, 1)
    std = torch.tensor(loaders.preprocessing.std).view(1, 3, 1, 1)
    model = ssdlite320_mobilenet_v3_large(weights=None, weights_backbone=None, num_classes=2)
    for module in model.modules():  # BatchNorm momentum 0.1 as ours: its 0.03 leaves the statistics stale in short runs
        if isinstance(module, torch.nn.BatchNorm2d):
            module.momentum = 0.1
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    steps = len(loaders.train_loader)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_factor(step, steps, cfg))
    start = time.perf_counter()
    for epoch in range(cfg.epochs):
        loaders.set_epoch(epoch)
        model.train()
        for images, targets in loaders.train_loader:
            pixels = images * std + mean  # torchvision's transform normalises [0, 1] images itself
            boxes, labels = targets.in_window()
            side = images.shape[-1]
            wanted = [{"boxes": b[lab > 0] * side, "labels": lab[lab > 0]} for b, lab in zip(boxes, labels)]
            losses = model(list(pixels), wanted)
            loss = sum(losses.values())
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
    seconds = time.perf_counter() - start
    model.eval()
    model.score_thresh, model.detections_per_img = 0.01, 100  # as ours
    images_seen = ImageDetections()
    with torch.no_grad():
        for images, targets in loaders.val_loader:
            side = images.shape[-1]
            for i, out in enumerate(model(list(images * std + mean))):
                det = Detections(out["boxes"] / side, out["scores"], out["labels"])
                image = int(targets.image_id[i])
                size = tuple(int(s) for s in targets.image_size[i])
                images_seen.parts[image].append(to_image(det, targets.window[i], size))
                images_seen.truth.setdefault(image, targets.image(i))
    return figures(coco_figures(images_seen.merged(), 2)["figures"], seconds, cfg.epochs)


def convert_imagenet(folder: Path) -> str:
    from mobilenetv2.cli import main

    path = folder / "imagenet.safetensors"
    if main(["convert", str(TFLITE), str(path), "--labels", str(DATA / "tflite" / "imagenet_labels.txt")]) != 0:
        raise SystemExit("could not convert the TFLite ImageNet classifier")
    return str(path)


def convert_person(folder: Path) -> str:
    from mobilenetv2.cli import main

    path = folder / "person.safetensors"
    if main(["convert", str(PERSON_GRAPH), str(path)]) != 0:
        raise SystemExit(f"could not convert {PERSON_GRAPH}")
    return str(path)


def starting_weights(name: str, args: argparse.Namespace) -> str | None:
    """The checkpoint a start of ours fine-tunes from (None: from scratch)."""
    if name == "person":
        return str(args.person) if args.person else convert_person(args.out)
    return convert_imagenet(args.out) if name == "imagenet" else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--input-size", type=int, default=320)
    parser.add_argument("--tile", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--starts", "--only", nargs="+", choices=list(LABELS), default=list(LABELS),
                        help="the starting points, trained in this order")
    parser.add_argument("--holdout", choices=TRAIN, help="validate on this 400 px photo (a new site), not YELL's right part")
    parser.add_argument("--person", type=Path, help="the person detector already converted (default: convert the frozen graph)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    parser.add_argument("--out", type=Path, default=Path("runs/detection-trees"))
    parser.add_argument("--prepare", type=Path, metavar="DIR", help="only write the split's train.csv/val.csv to DIR")
    args = parser.parse_args()
    if args.person and not args.person.is_file():
        parser.error(f"--person {args.person}: no such file")
    args.out = args.out.resolve()  # the split's CSVs name their tiles by absolute path: a relative --out doubled it
    if args.prepare:
        print(f"wrote {prepare(args.prepare.resolve(), args.holdout)}/train.csv and val.csv")
        return
    torch.set_num_threads(args.threads)
    data = prepare(args.out / "split", args.holdout)
    print(describe())
    print(f"validation: {args.holdout or 'YELL right part'}", flush=True)
    rows = {}
    for name in args.starts:
        if name == "torchvision":
            rows[name] = run_torchvision(args, data)
        else:
            rows[name] = run_ours(args, data, args.out / name, starting_weights(name, args))
        print(name, rows[name], flush=True)
    print(f"\n| model | mAP@.5 | mAP@[.5:.95] | mAP@.75 | AR@300 | training passes ({args.epochs} epochs) |")
    print("|---|---|---|---|---|---|")
    for name, r in rows.items():
        print(f"| {LABELS[name]} | {r['map50']:.1%} | {r['map']:.1%} | {r['map75']:.1%} | {r['ar300']:.1%} | "
              f"{r['train_s']:.0f} s |")
    (args.out / "results.json").write_text(json.dumps({"cpu": describe(), "args": {k: str(v) for k, v in vars(args).items()},
                                                       "results": rows}, indent=2))
    assert all(math.isfinite(r["map"]) for r in rows.values())


if __name__ == "__main__":
    main()
