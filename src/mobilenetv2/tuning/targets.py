"""Device targets of ``tune --target``: how each candidate is deployed (the file ``export``/``quantize`` write) and
measured (batch-1 latency on this machine's runtime, file size, TFLM arena and flash, MACs and parameters).

The figures depend on the architecture and the resolution, not on the trained weights, so each candidate is measured
once, before any training, on a model with random weights and live BatchNorm statistics (int8 ranges of a freshly
initialised net would be degenerate), and cached in ``OUT/measurements.json`` by architecture, resolution, classes,
target, threads, CPU and package versions. Measuring holds ``OUT/device.lock`` exclusively and training holds it
shared, so no worker of the study measures while another trains."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib.metadata
import json
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mobilenetv2.errors import UserError
from mobilenetv2.io import atomic_write_text

CALIB_IMAGES = 32     # calibration images for a candidate's measurement file (its weights are random anyway)
ROUNDS, WARMUP = 20, 3


@dataclass(frozen=True)
class Target:
    """One deployment: the format written, the backend that runs it, and whether the file is int8."""

    name: str
    format: str | None          # None: the PyTorch model itself (no file)
    backend: str
    int8: bool = False
    io: str | None = None       # LiteRT's input/output type of the int8 file (tflm: int8)
    description: str = ""

    @property
    def extra_module(self) -> tuple[str, str] | None:
        """(module, extra) that this target's backend needs, or None (torch)."""
        from mobilenetv2.backends import get_backend

        entry = get_backend(self.backend)
        return (entry.package, entry.extra) if entry.package else None

    def require(self) -> None:
        """One line naming the extra to install when this target's runtime or exporter is missing (checked without
        importing them: litert-torch takes seconds to import)."""
        from mobilenetv2.extras import available, require

        needed = [self.extra_module] if self.extra_module else []
        if self.format == "tflite":
            needed.append(("litert_torch", "mobile"))  # the exporter of .tflite files
        for module, extra in needed:
            if not available(module):
                require(module, extra)  # raises the usual one line

    def deploy(self, model: Any, meta: Any, folder: Path, calib: list | None) -> Path:
        """The file ``export`` (fp32) or ``quantize`` (int8, calibrated on ``calib``) writes for ``model``."""
        from mobilenetv2.export.exporter import export_model
        from mobilenetv2.formats import get_format
        from mobilenetv2.formats.base import QuantizeOptions

        fmt = get_format(self.format)
        fp32 = folder / f"fp32{fmt.suffix}"
        export_model(model, fp32, self.format, meta=meta)
        if not self.int8:
            return fp32
        int8 = folder / f"int8{fmt.suffix}"
        fmt.quantize(model, int8, meta, calib, QuantizeOptions(io=self.io), fp32_path=fp32)
        fmt.finish(int8, meta, "int8")
        return int8

    def file_figures(self, path: Path, threads: int, resolution: int) -> dict[str, Any]:
        """Batch-1 latency of ``path`` on this target's runtime, the file's size, and TFLM's arena and flash."""
        import numpy as np

        from mobilenetv2.formats import get_format, open_runtime
        from mobilenetv2.timing import time_interleaved

        runtime = open_runtime(path, self.backend, threads)
        x = runtime.to_native(np.zeros((1, runtime.input_channels, resolution, resolution), np.float32))
        ms = time_interleaved({"m": lambda: runtime.run(x)}, rounds=ROUNDS, warmup=WARMUP)["m"].median_ms
        files = get_format(self.format).outputs(path)
        figures = {"latency_ms": ms, "size_mb": sum(p.stat().st_size for p in files if p.is_file()) / 1e6}
        if hasattr(runtime, "arena_bytes"):
            figures.update(arena_kib=runtime.arena_bytes / 1024, flash_kib=runtime.flash_bytes / 1024)
        return figures


TARGETS: dict[str, Target] = {t.name: t for t in [
    Target("torch", None, "torch", description="PyTorch eager fp32 (one thread unless --threads): today's behaviour"),
    Target("litert-fp32", "tflite", "litert", description="fp32 .tflite in the LiteRT interpreter (XNNPACK)"),
    Target("litert-int8", "tflite", "litert", int8=True,
           description="int8 .tflite as `quantize --out M.int8.tflite` writes it, in the LiteRT interpreter"),
    Target("tflm", "tflite", "tflm", int8=True, io="int8",
           description="full-integer .tflite (`quantize --io int8`) in TensorFlow Lite Micro: arena (SRAM) and flash"),
    Target("onnxruntime-int8", "onnx", "onnxruntime", int8=True,
           description="int8 QDQ .onnx as `quantize` writes it, in onnxruntime (CPU)"),
    Target("openvino-int8", "openvino", "openvino", int8=True,
           description="int8 OpenVINO IR as `quantize --format openvino` writes it, in OpenVINO (CPU)"),
]}


def get_target(name: str) -> Target:
    if name not in TARGETS:
        raise UserError(f"unknown --target {name!r}; choose one of {', '.join(TARGETS)}")
    return TARGETS[name]


def with_live_batchnorm(model: Any, seed: int = 0) -> Any:
    """``model`` with seeded random BatchNorm statistics and affine terms: zero-initialised BatchNorms would silence the
    blocks, and with them the int8 ranges that device figures depend on."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=gen) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
            m.bias.data.copy_(torch.randn(m.num_features, generator=gen) * 0.1)
    return model


@dataclass(frozen=True)
class Candidate:
    """What the device figures depend on: the model, its width, resolution and number of classes."""

    model: str
    width: float | None
    resolution: int
    num_classes: int

    def build(self) -> Any:
        """The candidate with random weights and live BatchNorm statistics (seeded)."""
        import torch

        from mobilenetv2.models import create_model

        torch.manual_seed(0)
        kwargs = {} if self.width is None else {"width_mult": self.width}
        return with_live_batchnorm(create_model(self.model, num_classes=self.num_classes, **kwargs).eval())

    def meta(self, model: Any) -> Any:
        from mobilenetv2.spec import Preprocessing
        from mobilenetv2.weights import CheckpointMeta

        return CheckpointMeta(architecture=model.arch, class_names=[str(i) for i in range(self.num_classes)],
                              preprocessing=Preprocessing(input_size=self.resolution))


def versions(target: Target) -> dict[str, str | None]:
    """The versions the figures depend on: mobilenetv2, torch and the target's runtime and exporter."""
    names = ["mobilenetv2", "torch", *{"tflite": ["ai-edge-litert", "litert-torch", "tflite-micro"],
                                        "onnx": ["onnxruntime", "onnx"], "openvino": ["openvino", "nncf"]}
                                       .get(target.format or "", [])]
    found: dict[str, str | None] = {}
    for name in names:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            found[name] = None
    return found


def cache_key(candidate: Candidate, target: Target, threads: int, arch: dict | None = None) -> str:
    """A stable key for one candidate's figures on one target, CPU (model and flags), thread count and versions."""
    from mobilenetv2.hardware import cpu_info

    cpu = cpu_info()
    parts = {"candidate": [candidate.model, candidate.width, candidate.resolution, candidate.num_classes],
             "arch": arch, "target": target.name, "threads": threads, "cpu": cpu.model, "flags": sorted(cpu.flags),
             "versions": versions(target)}
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:32]


class MeasurementCache:
    """``measurements.json``: key -> figures, rewritten atomically after each new measurement."""

    def __init__(self, path: Path):
        self.path = Path(path)

    def read(self) -> dict[str, dict]:
        try:
            return json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}

    def get(self, key: str) -> dict | None:
        return self.read().get(key)

    def put(self, key: str, figures: dict) -> None:
        entries = {**self.read(), key: figures}
        atomic_write_text(self.path, json.dumps(entries, indent=1, sort_keys=True))


@contextlib.contextmanager
def device_lock(path: Path, exclusive: bool) -> Iterator[None]:
    """``path`` locked: exclusively while measuring, shared while training (many trainers, never with a measurer)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def model_figures(model: Any, resolution: int) -> dict[str, float]:
    """Multiply-adds and parameters (millions), for every target."""
    from mobilenetv2.analysis.profile import count_macs

    return {"macs_m": count_macs(model, resolution) / 1e6, "params_m": sum(p.numel() for p in model.parameters()) / 1e6}


def torch_latency_ms(model: Any, resolution: int, threads: int) -> float:
    """Median batch-1 latency of the eager fp32 model (what ``--max-latency-ms`` measured without a target)."""
    import torch

    from mobilenetv2.timing import time_interleaved, torch_threads

    x = torch.randn(1, 3, resolution, resolution)

    def step() -> None:
        with torch.inference_mode():
            model(x)

    with torch_threads(threads):
        return time_interleaved({"m": step}, rounds=ROUNDS, warmup=WARMUP)["m"].median_ms


def measure(candidate: Candidate, target: Target, threads: int, calib: Callable[[int], list] | None) -> dict[str, Any]:
    """The candidate's figures on ``target``: built, deployed in a temporary folder, opened and timed."""
    model = candidate.build()
    figures = model_figures(model, candidate.resolution)
    if target.format is None:
        size = sum(t.numel() * t.element_size() for t in model.state_dict().values()) / 1e6
        return {**figures, "latency_ms": torch_latency_ms(model, candidate.resolution, threads), "size_mb": size}
    with tempfile.TemporaryDirectory(prefix="mobilenetv2-target-") as tmp:
        batches = calib(candidate.resolution) if target.int8 and calib else None
        path = target.deploy(model, candidate.meta(model), Path(tmp), batches)
        return {**figures, **target.file_figures(path, threads, candidate.resolution)}
