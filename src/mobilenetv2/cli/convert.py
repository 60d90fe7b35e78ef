"""``mobilenetv2 convert``: TFLite, Keras and TF Object Detection API (frozen graph or checkpoint folder) weights into our
checkpoint format."""

from __future__ import annotations

import argparse
from pathlib import Path

FORMATS = {".tflite": "tflite", ".keras": "keras", ".h5": "keras", ".hdf5": "keras", ".pb": "tf_graph"}
FOLDER = "tf_checkpoint"  # a folder: the Object Detection API's model.ckpt.* and pipeline.config


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("convert", help="import TFLite (.tflite), Keras (.keras/.h5) or TF detection (.pb) MobileNet weights",
                       description="Convert a TensorFlow Lite MobileNetV2 or MobileNetV1 (float, uint8 or int8; any width and "
                                   "resolution) "
                                   "or keras.applications.MobileNetV2 weights (.keras, .h5, .weights.h5; any alpha), or the "
                                   "published DeepLabv3-MobileNetV2 segmentation TFLite files (full or half width), or a TF "
                                   "Object Detection API SSDLite-MobileNetV2 frozen graph (frozen_inference_graph.pb) or TF1 "
                                   "checkpoint folder (model.ckpt.index, model.ckpt.data-*, pipeline.config), into "
                                   "one .safetensors checkpoint with its class names and preprocessing. The architecture "
                                   "is read from the file's tensors. Nothing is written unless the conversion succeeds.")
    p.add_argument("source", help="the .tflite, .keras, .h5 or .pb (frozen graph) file, or a TF1 detection checkpoint folder")
    p.add_argument("out", help="the checkpoint to write (.safetensors)")
    p.add_argument("--labels", help="class names, one a line, one per class of the model (a note may follow after a blank line); "
                                    "for a .pb or checkpoint folder also the Object Detection API's label_map.pbtxt")
    p.add_argument("--drop-background", action="store_true",
                   help="drop output 0 ('background') of a 1001-class TFLite model: the usual 1000 ImageNet classes")
    p.add_argument("--calibrate", nargs="+", metavar="IMAGES",
                   help="TFLite: image files/folders/globs (up to --calibrate-images) that give the folded BatchNorm "
                        "layers real statistics; needed before fine-tuning with BatchNorm in training mode")
    p.add_argument("--calibrate-images", type=int, default=128, help="at most this many calibration images (default 128)")
    return p


def run(args: argparse.Namespace) -> int:
    from mobilenetv2.errors import UserError
    from mobilenetv2.weights import save_checkpoint

    source, out = Path(args.source), Path(args.out)
    kind = FOLDER if source.is_dir() else FORMATS.get(source.suffix.lower())
    if kind is None:
        raise UserError(f"cannot tell the format of {source}: allowed extensions are {', '.join(FORMATS)}, "
                        "or a TF1 checkpoint folder")
    if kind != FOLDER and not source.is_file():
        raise UserError(f"source file not found: {source}")
    if out.suffix != ".safetensors":
        raise UserError(f"the output must be a .safetensors file, got {out}")
    ckpt = CONVERTERS[kind](source, args)
    save_checkpoint(out, ckpt.model, meta=ckpt.meta)
    a, pre = ckpt.model.arch["args"], ckpt.preprocessing
    labels = f"{len(ckpt.class_names)} labels" if ckpt.class_names else "no labels"
    print(f"converted {source} ({kind}) -> {out}: {ckpt.task} model {ckpt.model.arch['name']} width {a['width_mult']}, "
          f"{a['num_classes']} classes "
          f"({labels}), input {pre.input_size}x{pre.input_size} RGB pixels p as p/{pre.std[0] * 255:.4g} "
          f"- {pre.mean[0] / pre.std[0]:.4g}, TF padding")
    if kind == "tflite":
        used = ckpt.extra["bn_calibration_images"]
        print(f"BatchNorm statistics calibrated on {used} images" if used else
              "note: BatchNorm is folded into the convolutions; before fine-tuning with BatchNorm in training mode, "
              "convert again with --calibrate IMAGES (e.g. your training images)")
    if kind in ("tf_graph", FOLDER):
        from mobilenetv2.weights.tf_detection import describe

        print(describe(ckpt))
    return 0


def _tflite(source: Path, args: argparse.Namespace):
    from mobilenetv2.errors import UserError
    from mobilenetv2.weights.tflite import convert_tflite
    from mobilenetv2.weights.tflite_deeplab import convert_deeplab_tflite, is_deeplab_tflite

    if args.calibrate_images < 1:
        raise UserError(f"--calibrate-images must be >= 1, got {args.calibrate_images}")
    if is_deeplab_tflite(source):  # the graph says which model it is, not the file name
        if args.drop_background:
            raise UserError("--drop-background applies to classifiers; a segmentation model keeps class 0, background")
        ckpt = convert_deeplab_tflite(source, labels=args.labels)
    else:
        ckpt = convert_tflite(source, labels=args.labels, drop_background=args.drop_background)
    if args.calibrate:
        calibrate(ckpt, args.calibrate, args.calibrate_images)
    return ckpt


def _keras(source: Path, args: argparse.Namespace):
    from mobilenetv2.weights.keras import convert_keras

    _no_tflite_flags(args, "Keras files keep their BatchNorm statistics and have no background class")
    return convert_keras(source, labels=args.labels)


def _tf_graph(source: Path, args: argparse.Namespace):
    from mobilenetv2.weights.tf_detection import convert_tf_detection

    _no_tflite_flags(args, "a frozen detection graph keeps its BatchNorm statistics and its background class")
    return convert_tf_detection(source, labels=args.labels)


def _tf_checkpoint(source: Path, args: argparse.Namespace):
    from mobilenetv2.weights.tf_checkpoint import convert_tf_checkpoint

    _no_tflite_flags(args, "a detection checkpoint keeps its BatchNorm statistics and its background class")
    return convert_tf_checkpoint(source, labels=args.labels)


def _no_tflite_flags(args: argparse.Namespace, why: str) -> None:
    from mobilenetv2.errors import UserError

    if args.drop_background or args.calibrate:
        raise UserError(f"--drop-background and --calibrate apply to TFLite files; {why}")


# FORMATS' kinds (and a folder's) -> their converter
CONVERTERS = {"tflite": _tflite, "keras": _keras, "tf_graph": _tf_graph, FOLDER: _tf_checkpoint}


def calibrate(ckpt, images: list[str], limit: int) -> None:
    """Give the converted model's folded BatchNorm layers the statistics of up to ``limit`` of ``images``."""
    import torch

    from mobilenetv2.data.images import load_image, spread_images
    from mobilenetv2.data.preprocessing import eval_transform
    from mobilenetv2.weights.tflite import calibrate_checkpoint

    transform = eval_transform(ckpt.preprocessing)
    calibrate_checkpoint(ckpt, torch.stack([transform(load_image(p)) for p in spread_images(images, limit)]))
