"""Resume state of a run (state.pt): tensors, numbers and dicts only, loaded with ``weights_only=True``."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import torch

from mobilenetv2.errors import UserError
from mobilenetv2.io import atomic_path

STATE_NAME = "state.pt"


def rng_state() -> dict[str, Any]:
    state: dict[str, Any] = {"torch": torch.get_rng_state(), "python": list(random.getstate()[1])}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate((3, tuple(state["python"]), None))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_state(run_dir: Path, state: dict[str, Any]) -> Path:
    """Write ``run_dir/state.pt`` atomically."""
    path = run_dir / STATE_NAME
    with atomic_path(path) as tmp:
        torch.save(state, tmp)
    return path


def load_state(run_dir: str | Path) -> dict[str, Any]:
    """The resume state of ``run_dir``; a folder without one is one clear error."""
    path = Path(run_dir) / STATE_NAME
    if not Path(run_dir).is_dir():
        raise UserError(f"cannot resume: run folder {run_dir} does not exist")
    if not path.is_file():
        raise UserError(f"cannot resume: {run_dir} has no {STATE_NAME} (it is written after each epoch of `mobilenetv2 train`)")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch raises many types for a bad file
        raise UserError(f"cannot resume: {path} is unreadable ({type(exc).__name__}: {str(exc)[:100]})") from exc
