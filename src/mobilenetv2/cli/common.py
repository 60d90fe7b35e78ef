"""Argument helpers shared by subcommands."""

from __future__ import annotations

import argparse
import json
from typing import Any


def add_model_args(p: argparse.ArgumentParser, default: str = "mobilenet_v2") -> None:
    """--model, --width, --num-classes, --resolution: the architecture's knobs."""
    p.add_argument("--model", default=default, help=f"model name (see `mobilenetv2 info --list`; default {default})")
    p.add_argument("--width", type=float, default=None, help="width multiplier (any float > 0; paper: 0.35 to 1.4)")
    p.add_argument("--resolution", type=int, default=224, help="input resolution, >= 32 (paper: 96 to 224)")
    p.add_argument("--num-classes", type=int, default=None,
                   help="number of output classes (default: the model's: 1000 for classifiers, 21 for DeepLab, 91 for SSDLite)")


def add_backend_args(p: argparse.ArgumentParser, device_default: str | None = None,
                     device_help: str = "torch backend: cpu, cuda, cuda:1 ... (default: cuda when available)") -> None:
    """--backend, --threads, --device: which engine runs the model, and on what."""
    from mobilenetv2.backends import list_backends

    p.add_argument("--backend", default="auto", metavar="NAME", help=backend_help(list_backends()))
    p.add_argument("--threads", type=int, default=None, help="CPU threads of the backend (default: its own choice)")
    p.add_argument("--device", default=device_default, help=device_help)


def add_labels_arg(p: argparse.ArgumentParser) -> None:
    """--labels: class names for a model file that has none (Google's published .tflite files)."""
    p.add_argument("--labels", metavar="FILE", default=None,
                   help="class names, one a line, for a file without them (e.g. Google's published .tflite files with "
                        "imagenet_labels.txt); one per class (a note may follow after a blank line)")


def backend_help(names: list[str]) -> str:
    return (f"the engine that runs the model: auto, {', '.join(names)}; NAME:bf16 computes an fp32 model in bf16 where "
            f"the CPU has it (torch:bf16, openvino:bf16). auto (default): a checkpoint runs on torch; an exported file "
            f"is timed on each backend that runs it (e.g. onnxruntime and openvino for .onnx) and the fastest is kept, "
            f"at the file's own precision (never bf16), the choice logged and cached in "
            f"~/.cache/mobilenetv2/backend-choice.json ($XDG_CACHE_HOME). A checkpoint on another backend is exported "
            f"to its format and verified first")


def model_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    kwargs: dict[str, Any] = {}
    if getattr(args, "width", None) is not None:
        kwargs["width_mult"] = args.width
    if getattr(args, "num_classes", None) is not None:
        kwargs["num_classes"] = args.num_classes
    return kwargs


def print_json(data: Any) -> None:
    print(json.dumps(data, indent=2))
