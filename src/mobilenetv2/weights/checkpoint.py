"""Our checkpoint format: one ``.safetensors`` file whose metadata holds a JSON document.

The JSON (key ``mobilenetv2``) records the architecture, class names, preprocessing and metrics, so that
``load_model(path)`` rebuilds the model without unpickling anything.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from mobilenetv2.data.preprocessing import Preprocessing
from mobilenetv2.errors import UserError
from mobilenetv2.io import atomic_path
from mobilenetv2.models import MobileNet, model_from_arch
from mobilenetv2.weights.convert import load_state_dict_strict, to_our_keys

FORMAT = "mobilenetv2-checkpoint"
FORMAT_VERSION = 1
METADATA_KEY = "mobilenetv2"
# Names tried, in order, when load_model is given a folder (a training run's folder, say).
CHECKPOINT_NAMES = ("best.safetensors", "model.safetensors", "last.safetensors")


@dataclass
class Checkpoint:
    """A loaded checkpoint: the model (eval mode) and what was stored with it."""

    model: MobileNet
    class_names: list[str] | None
    preprocessing: Preprocessing
    metrics: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None


def save_checkpoint(
    path: str | os.PathLike[str],
    model: MobileNet,
    class_names: list[str] | None = None,
    preprocessing: Preprocessing | None = None,
    metrics: dict[str, Any] | None = None,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write ``model`` and its metadata to ``path`` atomically; return the path."""
    model = getattr(model, "module", model)  # unwrap DistributedDataParallel
    model = getattr(model, "_orig_mod", model)  # unwrap torch.compile
    if class_names is not None and len(class_names) != model.num_classes:
        raise UserError(f"{len(class_names)} class names given for a model with {model.num_classes} outputs")
    meta = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "architecture": model.arch,
        "class_names": list(class_names) if class_names is not None else None,
        "preprocessing": (preprocessing or Preprocessing()).to_dict(),
        "metrics": metrics or {},
        "extra": extra or {},
    }
    tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in model.state_dict().items()}
    path = Path(path)
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata={METADATA_KEY: json.dumps(meta)})
    return path


def read_metadata(path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The JSON stored in one of our checkpoints, or None for a safetensors file of someone else's."""
    try:
        with safe_open(str(path), framework="pt") as f:
            raw = (f.metadata() or {}).get(METADATA_KEY)
    except (SafetensorError, OSError, ValueError) as exc:
        raise UserError(f"{path} is not a readable safetensors file ({exc})") from None
    if raw is None:
        return None
    try:
        meta = json.loads(raw)
    except json.JSONDecodeError:
        raise UserError(f"{path}: the checkpoint's metadata is not valid JSON") from None
    if meta.get("format") != FORMAT:
        raise UserError(f"{path}: not a {FORMAT} file (format {meta.get('format')!r})")
    return meta


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
    """Load one of our checkpoints, or a torchvision/timm state dict (.pth/.safetensors) with inferred architecture."""
    p = resolve_checkpoint_path(path)
    if p.suffix in (".pth", ".pt", ".bin"):
        return _from_foreign(_torch_load(p), p, model_overrides)
    meta = read_metadata(p)
    try:
        sd = load_file(str(p))
    except (SafetensorError, OSError) as exc:
        raise UserError(f"{p} is corrupt or truncated ({exc})") from None
    if meta is None:
        return _from_foreign(sd, p, model_overrides)
    arch = {"name": meta["architecture"]["name"], "args": {**meta["architecture"].get("args", {}), **model_overrides}}
    model = model_from_arch(arch)
    load_state_dict_strict(model, sd, what=f"checkpoint {p.name}")
    model.eval()
    return Checkpoint(model, meta.get("class_names"), Preprocessing.from_dict(meta.get("preprocessing") or {}),
                      meta.get("metrics") or {}, meta.get("extra") or {}, p)


def load_model(path: str | os.PathLike[str], **model_overrides: Any) -> MobileNet:
    """Load a model (eval mode) from a checkpoint; ``model.class_names`` and ``model.preprocessing`` are set."""
    ckpt = load_checkpoint(path, **model_overrides)
    ckpt.model.class_names = ckpt.class_names
    ckpt.model.preprocessing = ckpt.preprocessing
    return ckpt.model


def _torch_load(path: Path) -> dict[str, torch.Tensor]:
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)  # restricted unpickler: tensors only
    except Exception as exc:  # noqa: BLE001 - torch raises many types for a bad file
        raise UserError(f"{path} is not a loadable PyTorch state dict ({type(exc).__name__}: {str(exc)[:120]})") from None
    for key in ("state_dict", "model", "model_state_dict"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise UserError(f"{path} does not hold a state dict of tensors")
    return {k.removeprefix("module."): v for k, v in obj.items()}


def _from_foreign(sd: dict[str, torch.Tensor], path: Path, overrides: dict[str, Any]) -> Checkpoint:
    sd, arch = to_our_keys(sd)
    model = model_from_arch({"name": arch["name"], "args": {**arch["args"], **overrides}})
    load_state_dict_strict(model, sd, what=f"state dict {path.name}")
    model.eval()
    return Checkpoint(model, None, Preprocessing(), {}, {"source": str(path)}, path)
