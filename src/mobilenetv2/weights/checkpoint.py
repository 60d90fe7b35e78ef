"""Our checkpoint format: one ``.safetensors`` file whose metadata holds a JSON document.

The JSON (key ``mobilenetv2``) is a ``CheckpointMeta``: architecture, task, class names, preprocessing and metrics,
so that ``load_checkpoint(path)`` rebuilds the model without unpickling anything, after checking every field.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file
from torch import nn

from mobilenetv2.errors import UserError, first_line
from mobilenetv2.io import atomic_path
from mobilenetv2.models import model_from_arch
from mobilenetv2.spec import Preprocessing
from mobilenetv2.weights.foreign import check_state_dict, detect_format, load_state_dict_strict, to_our_keys
from mobilenetv2.weights.meta import (
    CHECKPOINT_NAMES,
    FOREIGN_PREPROCESSING,
    MAX_METADATA_BYTES,
    METADATA_KEY,
    TASK_NAMES,
    CheckpointMeta,
)

__all__ = ["METADATA_KEY", "TASK_NAMES", "Checkpoint", "CheckpointMeta", "check_finite", "load_checkpoint", "load_model",
           "read_header", "read_metadata", "resolve_checkpoint_path", "save_checkpoint"]


@dataclass
class Checkpoint:
    """A loaded checkpoint: the model (eval mode) and its metadata."""

    model: nn.Module
    meta: CheckpointMeta
    path: Path | None = None

    @property
    def task(self) -> str:
        return self.meta.task

    @property
    def class_names(self) -> list[str] | None:
        return self.meta.class_names

    @property
    def preprocessing(self) -> Preprocessing:
        return self.meta.preprocessing

    @property
    def metrics(self) -> dict[str, Any]:
        return self.meta.metrics

    @property
    def extra(self) -> dict[str, Any]:
        return self.meta.extra


def save_checkpoint(
    path: str | os.PathLike[str],
    model: nn.Module,
    class_names: list[str] | None = None,
    preprocessing: Preprocessing | None = None,
    metrics: dict[str, Any] | None = None,
    extra: dict[str, Any] | None = None,
    *,
    task: str | None = None,
    meta: CheckpointMeta | None = None,
) -> Path:
    """Write ``model`` and its metadata (``meta``, or the fields given) to ``path`` atomically; return the path."""
    model = getattr(model, "module", model)  # unwrap DistributedDataParallel
    model = getattr(model, "_orig_mod", model)  # unwrap torch.compile
    if meta is None:
        meta = CheckpointMeta.for_model(model, task=task, class_names=class_names, preprocessing=preprocessing,
                                        metrics=metrics, extra=extra)
    tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in model.state_dict().items()}
    path = Path(path)
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata={METADATA_KEY: json.dumps(meta.to_dict())})
    return path


def read_header(path: str | os.PathLike[str]) -> tuple[dict[str, Any] | None, dict[str, list[int]]]:
    """The stored metadata JSON (None for someone else's safetensors file) and every tensor's shape, reading no tensor."""
    try:
        with safe_open(str(path), framework="pt") as f:
            raw = (f.metadata() or {}).get(METADATA_KEY)
            shapes = {k: list(f.get_slice(k).get_shape()) for k in f.keys()}  # noqa: SIM118 - safe_open has no iterator
    except (SafetensorError, OSError, ValueError) as exc:
        raise UserError(f"{path} is not a readable safetensors file ({first_line(exc, 160)})") from exc
    if raw is None:
        return None, shapes
    if len(raw) > MAX_METADATA_BYTES:
        raise UserError(f"{path}: the checkpoint's metadata is {len(raw):,} bytes (at most {MAX_METADATA_BYTES:,})")
    try:
        return json.loads(raw), shapes
    except json.JSONDecodeError as exc:
        raise UserError(f"{path}: the checkpoint's metadata is not valid JSON") from exc


def read_metadata(path: str | os.PathLike[str]) -> CheckpointMeta | None:
    """The validated metadata of one of our checkpoints, or None for a safetensors file of someone else's."""
    data, _ = read_header(path)
    return None if data is None else CheckpointMeta.from_dict(data, str(path))


def resolve_checkpoint_path(path: str | os.PathLike[str]) -> Path:
    """A file as is; in a folder, the first of ``CHECKPOINT_NAMES`` that exists."""
    p = Path(path)
    if p.is_dir():
        for name in CHECKPOINT_NAMES:
            if (p / name).is_file():
                return p / name
        raise UserError(f"no checkpoint in folder {p} (looked for {', '.join(CHECKPOINT_NAMES)})")
    if not p.is_file():
        raise UserError(f"checkpoint not found: {p}")
    return p


def load_checkpoint(path: str | os.PathLike[str], **model_overrides: Any) -> Checkpoint:
    """Load one of our checkpoints, or a torchvision/timm state dict (.pth/.safetensors) with inferred architecture.

    The metadata and every tensor shape are checked against the architecture before any memory is allocated.
    """
    p = resolve_checkpoint_path(path)
    if p.suffix in (".pth", ".pt", ".bin"):
        return _from_foreign(_torch_load(p), p, model_overrides)
    data, shapes = read_header(p)
    if data is None:
        return _from_foreign(_load_tensors(p), p, model_overrides)
    meta = CheckpointMeta.from_dict(data, str(p))
    arch = {"name": meta.architecture["name"], "args": {**meta.architecture["args"], **model_overrides}}
    with torch.device("meta"):  # shapes only: a file claiming 300,000 classes costs nothing until it is checked
        skeleton = model_from_arch(arch)
    check_state_dict(skeleton, {k: torch.empty(s, device="meta") for k, s in shapes.items()}, what=f"checkpoint {p.name}")
    model = model_from_arch(arch)
    tensors = _load_tensors(p)
    check_finite(tensors, f"checkpoint {p}")
    load_state_dict_strict(model, tensors, what=f"checkpoint {p.name}")
    model.eval()
    return Checkpoint(model, meta.replace(architecture=model.arch), p)


def check_finite(tensors: dict[str, torch.Tensor], what: str) -> None:
    """One clear error naming the first tensor holding NaN or infinity: weights that cannot be right (a run that
    diverged, a corrupted file) are refused rather than predicting NaN."""
    for name, tensor in tensors.items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            bad = int((~torch.isfinite(tensor)).sum())
            kind = "NaN" if bool(torch.isnan(tensor).any()) else "infinite"
            raise UserError(f"{what}: tensor {name!r} holds {kind} values ({bad:,} of {tensor.numel():,}): the weights "
                            "are broken (a diverged run, a damaged file), not usable to predict or export")


def load_model(path: str | os.PathLike[str], **model_overrides: Any) -> nn.Module:
    """Load a model (eval mode) from a checkpoint; ``load_checkpoint`` gives its metadata too."""
    return load_checkpoint(path, **model_overrides).model


def _load_tensors(path: Path) -> dict[str, torch.Tensor]:
    try:
        return load_file(str(path))
    except (SafetensorError, OSError) as exc:
        raise UserError(f"{path} is corrupt or truncated ({first_line(exc, 160)})") from exc


def _torch_load(path: Path) -> dict[str, torch.Tensor]:
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)  # restricted unpickler: tensors only
    except Exception as exc:  # noqa: BLE001 - torch raises many types for a bad file
        raise UserError(f"{path} is not a loadable PyTorch state dict ({type(exc).__name__}: {first_line(exc, 160)})") from exc
    for key in ("state_dict", "model", "model_state_dict"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise UserError(f"{path} does not hold a state dict of tensors")
    return {k.removeprefix("module."): v for k, v in obj.items()}


def _from_foreign(sd: dict[str, torch.Tensor], path: Path, overrides: dict[str, Any]) -> Checkpoint:
    check_finite(sd, f"state dict {path}")
    source_format = detect_format(sd)
    sd, arch = to_our_keys(sd)
    model = model_from_arch({"name": arch["name"], "args": {**arch["args"], **overrides}})
    load_state_dict_strict(model, sd, what=f"state dict {path.name}")
    model.eval()
    meta = CheckpointMeta.for_model(model, preprocessing=FOREIGN_PREPROCESSING.get(source_format, Preprocessing()),
                                    extra={"source": str(path), "source_format": source_format})
    return Checkpoint(model, meta, path)
