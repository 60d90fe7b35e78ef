"""The device stage of a trial: the candidate's figures on the target (measured once, cached, never while another
trial trains), the budgets, and after training the deployed file and its accuracy through the target's runtime."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mobilenetv2.errors import UserError
from mobilenetv2.training.config import TrainConfig
from mobilenetv2.tuning.front import Budgets
from mobilenetv2.tuning.space import SearchSpace
from mobilenetv2.tuning.targets import Candidate, MeasurementCache, Target, cache_key, device_lock, measure

DEPLOY_CALIB = 128   # calibration images of a trained trial's int8 file (quantize's default)


def read_pretrained_map(path: str | Path | None) -> dict[float, str]:
    """A YAML map of width to checkpoint (``0.35: runs/w035/best.safetensors``); {} without one."""
    if path is None:
        return {}
    from mobilenetv2.training.config import read_yaml

    data = read_yaml(path)
    if not isinstance(data, dict) or not data:
        raise UserError(f"{path}: expected a YAML map of width to checkpoint, e.g. '1.0: weights/w1.0.safetensors'")
    try:
        found = {float(k): str(v) for k, v in data.items()}
    except (TypeError, ValueError) as exc:
        raise UserError(f"{path}: the keys must be widths (numbers), got {list(data)}") from exc
    missing = [v for v in found.values() if not Path(v).exists()]
    if missing:
        raise UserError(f"{path}: no such checkpoint {missing[0]!r}")
    return found


@dataclass
class Device:
    """What ``tune --target`` adds to each trial: figures, budgets, the deployed file and its accuracy."""

    target: Target
    budgets: Budgets
    out: Path
    data: str
    num_classes: Callable[[], int]
    threads: int = 1
    pretrained: dict[float, str] = field(default_factory=dict)
    log: Callable[[str], None] = print

    @property
    def cache(self) -> MeasurementCache:
        return MeasurementCache(self.out / "measurements.json")

    @property
    def lock(self) -> Path:
        return self.out / "device.lock"

    def candidate(self, cfg: TrainConfig) -> Candidate:
        from mobilenetv2.training.defaults import resolve_defaults

        return Candidate(cfg.model, cfg.width_mult, resolve_defaults(cfg).input_size, self.num_classes())

    def calibration(self, size: int) -> list:
        from mobilenetv2.export.calibration import calibration, is_labelled
        from mobilenetv2.spec import Preprocessing

        return calibration([self.data], is_labelled([self.data]), None, Preprocessing(input_size=size), 32)

    def figures(self, candidate: Candidate) -> dict[str, Any]:
        """The candidate's figures from the cache, or measured now (holding the device lock exclusively)."""
        key = cache_key(candidate, self.target, self.threads)
        found = self.cache.get(key)
        if found is not None:
            return found
        with device_lock(self.lock, exclusive=True):
            found = self.cache.get(key)  # another worker may have measured it while this one waited
            if found is None:
                self.log(f"measuring width {candidate.width} at {candidate.resolution} px on {self.target.name} ...")
                found = {**measure(candidate, self.target, self.threads, self.calibration),
                         "width": candidate.width, "resolution": candidate.resolution, "target": self.target.name}
                self.cache.put(key, found)
        return found

    def measure_all(self, space: SearchSpace, base: TrainConfig) -> list[dict[str, Any]]:
        """Every candidate of a finite width x resolution space, measured serially before any training."""
        values = {}
        for name in ("width_mult", "input_size"):
            param = space.params.get(name)
            if param is not None and param.type == "float" and param.step is None:
                return []  # a continuous range: each candidate is measured when a trial draws it
            values[name] = param.grid_values() if param else [getattr(base, name)]
        cells = itertools.product(values["width_mult"], values["input_size"])
        cfgs = [TrainConfig.from_dict({**base.to_dict(), "width_mult": w, "input_size": r}) for w, r in cells]
        return [self.figures(self.candidate(c)) for c in cfgs]

    def check_reachable(self, measured: list[dict[str, Any]]) -> None:
        """One line naming the smallest candidate's figures when no candidate is within the budgets."""
        if not measured or any(not self.budgets.over(f) for f in measured):
            return
        small = min(measured, key=lambda f: f["macs_m"])
        figures = ", ".join(f"{k} {small[k]:.4g}" for k in ("latency_ms", "size_mb", "arena_kib", "flash_kib", "macs_m")
                            if small.get(k) is not None)
        raise UserError(f"no candidate meets the budgets on {self.target.name}: the smallest (width {small['width']}, "
                        f"{small['resolution']} px) has {figures} ({'; '.join(self.budgets.over(small))})")

    def starting_point(self, params: dict[str, Any], base: TrainConfig) -> dict[str, Any]:
        """The width's own --pretrained checkpoint when the map has one; else the base config's (scratch)."""
        width = params.get("width_mult", base.width_mult)
        found = self.pretrained.get(float(width)) if width is not None else None
        return {**params, "pretrained": found} if found else params

    def deploy(self, checkpoint: Path, run_dir: Path) -> tuple[Path, float | None]:
        """The trained trial's deployable file, and its accuracy through the target's runtime (int8 targets: the
        file as ``quantize`` writes it, calibrated on the training split, scored on the validation split)."""
        from mobilenetv2.formats import get_format

        if self.target.format is None:
            return checkpoint, None
        suffix = get_format(self.target.format).suffix
        if not self.target.int8:
            from mobilenetv2.export.exporter import export_model
            from mobilenetv2.weights import load_checkpoint

            ckpt, path = load_checkpoint(checkpoint), run_dir / f"model{suffix}"
            export_model(ckpt.model, path, self.target.format, meta=ckpt.meta)
            return path, None
        from mobilenetv2.export.ptq import quantize_checkpoint
        from mobilenetv2.formats.base import QuantizeOptions

        path = run_dir / f"model.int8{suffix}"
        report = quantize_checkpoint(checkpoint, path, self.data, num_calib=DEPLOY_CALIB, fmt=self.target.format,
                                     options=QuantizeOptions(io=self.target.io), threads=self.threads, speed_rounds=3)
        return path, report.int8_top1
