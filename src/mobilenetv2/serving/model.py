"""What the server loads: the predictor of a checkpoint or an export on any backend, and its model card."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mobilenetv2.inference.predictor import Predictor


def load_served(path: str, backend: str | None = None, threads: int | None = None,
                labels: str | None = None) -> tuple[Predictor, dict[str, Any]]:
    """(predictor, model card). A file runs on its format's backend unless ``backend`` says otherwise; a checkpoint
    asked to run on another backend than torch is exported to that backend's format and verified first."""
    from mobilenetv2.inference import load_predictor

    # idle onnxruntime threads must not busy-wait: decoding and request handling need the same cores
    predictor = load_predictor(path, device="cpu", threads=threads, spin=False, backend=backend, labels=labels)
    return predictor, model_card(predictor, path)


def model_card(predictor: Predictor, path: str) -> dict[str, Any]:
    """Task, classes, preprocessing, size and cost of the served model, and how it runs. Parameters and multiply-adds
    are counted on the architecture's torch model when torch is loaded already (a checkpoint, an export from one):
    serving an exported file never imports torch."""
    runtime = predictor.runtime
    card: dict[str, Any] = {"model": Path(path).name, "task": predictor.task_name, "backend": runtime.backend,
                            "format": runtime.format, "precision": runtime.precision,
                            "backend_selection": runtime.selection,
                            "architecture": runtime.architecture, "class_names": predictor.class_names,
                            "preprocessing": predictor.preprocessing.to_dict(), "parameters": None, "multiply_adds": None}
    if runtime.architecture and sys.modules.get("torch") is not None:
        from mobilenetv2.analysis.profile import count_macs
        from mobilenetv2.models import model_from_arch

        model = model_from_arch(runtime.architecture)
        card["parameters"] = sum(p.numel() for p in model.parameters())
        card["multiply_adds"] = count_macs(model, predictor.preprocessing.input_size, model.in_chans)
    return card
