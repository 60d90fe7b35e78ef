"""What the server loads: the predictor for a checkpoint or an export, on the torch or onnx backend, and its card."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import torch

from mobilenetv2.errors import UserError

BACKENDS = ("torch", "onnx")


def load_served(path: str, backend: str | None = None, threads: int | None = None) -> tuple[Any, dict[str, Any]]:
    """(predictor, model card). A checkpoint serves on torch, or on onnxruntime with ``backend="onnx"`` (exported and
    verified first); an ``.onnx`` file serves on onnxruntime."""
    from mobilenetv2.evaluation import load_predictor

    is_onnx = Path(path).suffix.lower() == ".onnx"
    backend = backend or ("onnx" if is_onnx else "torch")
    if backend not in BACKENDS:
        raise UserError(f"--backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    if is_onnx and backend == "torch":
        raise UserError(f"{path} is an ONNX file: it serves on --backend onnx")
    if backend == "onnx":
        # torch only resizes and normalises here, from several threads at once: intra-op threads would fight
        # onnxruntime's for the cores (and each other's), so torch gets one
        torch.set_num_threads(1)
    elif threads is not None:
        torch.set_num_threads(threads)
    source, arch = path, None
    if backend == "onnx" and not is_onnx:
        source, arch = export_for_serving(path)
    # idle onnxruntime threads must not busy-wait: decoding and request handling need the same cores
    predictor = load_predictor(source, device="cpu", threads=threads, spin=False)
    return predictor, model_card(predictor, path, backend, arch)


def export_for_serving(checkpoint: str) -> tuple[str, dict]:
    from mobilenetv2.export.exporter import export_model
    from mobilenetv2.weights import load_checkpoint

    ckpt = load_checkpoint(checkpoint)
    out = Path(tempfile.mkdtemp(prefix="mobilenetv2-serve-")) / "model.onnx"
    export_model(ckpt.model, out, "onnx", meta=ckpt.meta)
    return str(out), ckpt.model.arch


def model_card(predictor: Any, path: str, backend: str, arch: dict | None = None) -> dict[str, Any]:
    """Task, classes, preprocessing, size and cost of the served model."""
    model = predictor.model if predictor.is_torch else None
    if model is None and arch is None:
        arch = stored_architecture(predictor)
    if model is None and arch is not None:
        from mobilenetv2.models import model_from_arch

        model = model_from_arch(arch)
    card: dict[str, Any] = {"model": Path(path).name, "task": predictor.task.name, "backend": backend,
                            "architecture": getattr(model, "arch", arch), "class_names": predictor.class_names,
                            "preprocessing": predictor.preprocessing.to_dict(), "parameters": None,
                            "multiply_adds": None}
    if model is not None:
        from mobilenetv2.analysis.profile import count_macs

        card["parameters"] = sum(p.numel() for p in model.parameters())
        card["multiply_adds"] = count_macs(model, predictor.preprocessing.input_size, model.in_chans)
    return card


def stored_architecture(predictor: Any) -> dict | None:
    from mobilenetv2.export.runtime import META_ARCHITECTURE

    session = getattr(predictor.model, "session", None)
    stored = session.get_modelmeta().custom_metadata_map.get(META_ARCHITECTURE) if session is not None else None
    return json.loads(stored) if stored else None
