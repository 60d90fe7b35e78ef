"""Inference speed of one model through every path the project offers, timed interleaved in one run.

Paths: torchvision's eager ``mobilenet_v2`` (the reference), our eager model (NCHW, channels_last, BN folded),
torch.compile, onnxruntime fp32 and onnxruntime int8 (static QDQ, per-channel), and a given TFLite file in the LiteRT
interpreter. Each path is a ``Runtime`` (the interface every backend implements), timed on its own inputs
(``runtime.run`` on what ``runtime.to_native`` made of the same images) at every batch size it takes;
ratios are given to the reference and to a compute limit measured on the spot: a large fp32 matmul's GFLOP/s with
the same thread count, timed before, inside (as one more candidate of every interleaved round) and after the paths, the
best of all kept, so that load on the machine lowers the paths and the limit alike (limit_ms = 2 * MACs * batch /
GFLOP/s). The limit is an fp32 one: int8 paths are not held to it (VNNI does several int8 multiply-adds per fp32
one). An fp32 path that still comes out faster than the limit is reported as such, never as a silent ratio < 1.
"""

from __future__ import annotations

import copy
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from torch import nn

from mobilenetv2.backends.base import Runtime, RuntimeOptions
from mobilenetv2.backends.torch import TorchRuntime
from mobilenetv2.benchmarking import PATHS
from mobilenetv2.errors import UserError
from mobilenetv2.hardware import describe
from mobilenetv2.timing import restores_threads, time_interleaved
from mobilenetv2.weights import CheckpointMeta

REFERENCE = "torchvision"
MATMUL = "fp32 matmul (compute limit)"
LABELS = {
    "torchvision": "torchvision eager fp32 (reference)", "eager": "eager fp32 NCHW",
    "channels_last": "eager fp32 channels_last", "bn_folded": "eager fp32 BN folded + channels_last",
    "compile": "torch.compile fp32 (BN folded, channels_last)", "onnx": "onnxruntime fp32",
    "int8": "onnxruntime int8 (QDQ, per-channel)", "tflite": "TFLite interpreter (the --tflite file, XNNPACK)",
}
TFLITE_PATH = "tflite:"  # a --tflite file's path name: "tflite:" + the file's name


def label(name: str) -> str:
    """How the table names a path (a --tflite file by its file name)."""
    if name.startswith(TFLITE_PATH):
        return f"LiteRT interpreter (XNNPACK): {name[len(TFLITE_PATH):]}"
    return LABELS[name]


@dataclass
class PathResult:
    name: str
    size_mb: float
    memory_mb: float                                      # RSS growth when built and run once (see `rss_mb`)
    median_ms: dict[int, float] = field(default_factory=dict)   # batch -> median ms per call
    p90_ms: dict[int, float] = field(default_factory=dict)
    precision: str = "fp32"                               # the runtime's: only fp32 paths are held to the fp32 limit
    backend: str = "torch"


@dataclass
class BenchmarkReport:
    model: str
    resolution: int
    threads: int
    macs: int
    gflops: float                                         # best measured fp32 matmul throughput, same threads
    batches: list[int]
    rounds: int
    paths: list[PathResult]
    cpu: str = ""                                         # `hardware.describe()`: features and backends

    def limit_ms(self, batch: int) -> float:
        return 2 * self.macs * batch / (self.gflops * 1e9) * 1e3

    def below_limit(self) -> list[tuple[str, int, float]]:
        """(path, batch, median / limit) for every fp32 median faster than the compute limit: it was disturbed."""
        return [(p.name, b, p.median_ms[b] / self.limit_ms(b)) for p in self.paths for b in self.batches
                if p.precision == "fp32" and b in p.median_ms and p.median_ms[b] < self.limit_ms(b)]

    def to_dict(self) -> dict:
        return {**asdict(self), "limit_ms": {b: self.limit_ms(b) for b in self.batches},
                "below_limit": [{"path": n, "batch": b, "ratio": round(r, 3)} for n, b, r in self.below_limit()]}

    def table(self) -> str:
        from mobilenetv2.reporting import format_table

        # the ratios are to torchvision's twin (classifiers), else to the TFLite interpreter, else there are none
        ref = next((p for p in self.paths if p.name == REFERENCE), None) or next(
            (p for p in self.paths if p.name.startswith(TFLITE_PATH)), None)
        headers = ["path", "size MB", "mem MB"]
        for b in self.batches:
            versus = [f"b{b} vs {'torchvision' if ref.name == REFERENCE else 'TFLite'}"] if ref else []
            headers += [f"b{b} median ms", f"b{b} p90 ms", f"b{b} img/s", *versus, f"b{b} / limit"]
        rows = []
        for p in self.paths:
            row = [label(p.name), f"{p.size_mb:.2f}", f"{p.memory_mb:.0f}"]
            for b in self.batches:
                if b not in p.median_ms:  # the TFLite file runs batch 1 only
                    row += ["-"] * (5 if ref else 4)
                    continue
                ms = p.median_ms[b]
                speedup = [f"{ref.median_ms[b] / ms:.2f}x" if b in ref.median_ms else "-"] if ref else []
                ratio = ms / self.limit_ms(b)
                limit = f"- ({p.precision})" if p.precision != "fp32" else f"{ratio:.2f}" + (" (!)" if ratio < 1 else "")
                row += [f"{ms:.2f}", f"{p.p90_ms[b]:.2f}", f"{1e3 * b / ms:.0f}", *speedup, limit]
            rows.append(row)
        limits = ", ".join(f"batch {b}: {self.limit_ms(b):.2f} ms" for b in self.batches)
        text = (f"{self.cpu}\n" if self.cpu else "") + (
            f"{self.model} at {self.resolution}px, {self.threads} threads, {self.macs / 1e6:.0f}M MACs; compute limit "
            f"from the best fp32 matmul ({self.gflops:.0f} GFLOP/s; fp32 paths only): {limits}\n\n" + format_table(headers, rows))
        faster = self.below_limit()
        if faster:
            shown = ", ".join(f"{label(n)} at batch {b} ({r:.2f}x the limit)" for n, b, r in faster)
            text += (f"\nwarning: faster than the measured compute limit: {shown}; the limit's matmul was slowed down "
                     "(machine under load?), so the '/ limit' ratios are not meaningful in this run")
        return text


MATMUL_N = 1024


def matmul_runner(n: int = MATMUL_N) -> Callable[[], object]:
    """A zero-argument fp32 n x n GEMM (2 * n**3 FLOPs), to be timed beside the paths."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    return lambda: a @ b


def gflops_from_ms(ms: float, n: int = MATMUL_N) -> float:
    return 2 * n**3 / (ms * 1e-3) / 1e9


@restores_threads
def matmul_gflops(threads: int, n: int = MATMUL_N, seconds: float = 0.5) -> float:
    """fp32 GEMM throughput with ``threads`` threads (the best call in ``seconds``): the CPU's practical ceiling."""
    torch.set_num_threads(threads)
    run = matmul_runner(n)
    for _ in range(3):
        run()
    best, deadline = float("inf"), time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return gflops_from_ms(best * 1e3, n)


def rss_mb() -> float:
    """Resident set size of this process (Linux /proc; 0 elsewhere). Growth between two reads is what a path
    added: its weights, arenas and workspaces, a lower bound when the allocator reuses freed memory."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def torchvision_twin(model: nn.Module) -> nn.Module:
    """torchvision's mobilenet_v2 with the same width, classes and weights (our keys are torchvision's)."""
    import torchvision

    args = model.arch["args"]
    twin = torchvision.models.mobilenet_v2(width_mult=args.get("width_mult", 1.0), num_classes=model.num_classes)
    twin.load_state_dict(model.state_dict())
    return twin.eval()


def meta_at_resolution(model: nn.Module, resolution: int, meta: CheckpointMeta | None = None) -> CheckpointMeta:
    """``meta`` (or a bare model's) with its input size set to ``resolution`` (ONNX files have a static image size)."""
    meta = meta or CheckpointMeta.for_model(model)
    return meta.replace(preprocessing=replace(meta.preprocessing, input_size=resolution))


def param_mb(model: nn.Module) -> float:
    return sum(t.numel() * t.element_size() for t in model.state_dict().values()) / 1e6


def build_runtime(name: str, model: nn.Module, meta: CheckpointMeta, workdir: Path, options: RuntimeOptions,
                  calibration: list[np.ndarray], tflite: str | None = None) -> tuple[Runtime, float]:
    """One path as a runtime, and its model's size in MB (the file's, for files)."""
    from mobilenetv2.formats import get_format, open_runtime
    from mobilenetv2.models.fuse import fuse_bn

    if name == "torchvision":
        return TorchRuntime(torchvision_twin(model), meta, options=options), param_mb(model)
    if name == "eager":
        return TorchRuntime(model, meta, options=options), param_mb(model)
    if name == "channels_last":
        return TorchRuntime(copy.deepcopy(model), meta, options=options, channels_last=True), param_mb(model)
    if name in ("bn_folded", "compile"):
        fused = fuse_bn(model).to(memory_format=torch.channels_last)
        module = torch.compile(fused, dynamic=False) if name == "compile" else fused
        return TorchRuntime(module, meta, options=options, channels_last=True), param_mb(fused)
    if name.startswith(TFLITE_PATH):
        path = Path(tflite)
        return open_runtime(path, "litert", options.threads), path.stat().st_size / 1e6
    from mobilenetv2.export.exporter import export_model

    fp32_path = workdir / "fp32.onnx"
    if not fp32_path.exists():
        export_model(model, fp32_path, "onnx", meta=meta)
    path = fp32_path
    if name == "int8":
        from mobilenetv2.formats.onnx import quantize_onnx

        path = quantize_onnx(fp32_path, workdir / "int8.onnx", calibration)
    # no spinning: idle threads of one session would slow the paths interleaved with it
    return get_format("onnx").open(path, "onnxruntime", options), path.stat().st_size / 1e6


def runners(runtime: Runtime, inputs: dict[int, torch.Tensor], resolution: int) -> dict[int, Callable[[], object]]:
    """A zero-argument call of ``runtime.run`` per batch size it takes, on the same images as its own inputs."""
    spatial = runtime.input_shape[1:3] if runtime.input_layout == "NHWC" else runtime.input_shape[2:4]
    if any(side is not None and side != resolution for side in spatial):
        raise UserError(f"{runtime.path.name if runtime.path else runtime.backend} takes {spatial[0]}x{spatial[1]} images; "
                        f"the benchmark runs at {resolution} (give --resolution {spatial[0]})")
    native = {b: runtime.to_native(x.numpy()) for b, x in inputs.items() if runtime.max_batch in (None, b)}
    return {b: (lambda x=x: runtime.run(x)) for b, x in native.items()}


@restores_threads
def benchmark_inference(model: nn.Module, *, resolution: int = 224, threads: int = 2, batches: tuple[int, ...] = (1, 32),
                        paths: tuple[str, ...] = PATHS, rounds: int = 20, warmup: int = 3,
                        calibration: list[np.ndarray] | None = None, tflite: str | list[str] | None = None,
                        meta: CheckpointMeta | None = None,
                        on_progress: Callable[[str], None] | None = None) -> BenchmarkReport:
    """Build every requested path, then time them all interleaved, batch size by batch size.

    ``tflite``: also time the TFLite interpreter on this file or these files (batch 1, each its own input type:
    uint8 for the published files, on the same threads; our int8 export beside Google's file, say); torchvision's
    twin is timed only for MobileNetV2 classifiers (it has no segmentation head). ``meta``: the checkpoint's
    metadata, when the model comes from one (its task verifies the ONNX export).
    ``calibration``: batches for the int8 path (default: 8 seeded random images, one a batch, which bounds the
    calibration's memory at large sizes; minmax ranges do not depend on the batching).
    """
    from mobilenetv2.analysis import count_macs

    unknown = [p for p in paths if p not in PATHS]
    if unknown:
        raise UserError(f"unknown path(s) {', '.join(unknown)}; allowed: {', '.join(PATHS)}")
    if threads < 1 or rounds < 1 or not batches or min(batches) < 1:
        raise UserError("--threads, --rounds and every --batch must be >= 1")
    torch.set_num_threads(threads)
    model = model.eval()
    if not model.arch["name"].startswith("mobilenet_v2"):
        paths = tuple(p for p in paths if p != REFERENCE)
    files: dict[str, str] = {}
    for file in [tflite] if isinstance(tflite, str) else tflite or []:
        name = f"{TFLITE_PATH}{Path(file).name}"
        files[name if name not in files else f"{name} ({len(files) + 1})"] = file
    paths = (*paths, *files)
    inputs = {b: torch.randn(b, model.in_chans, resolution, resolution, generator=torch.Generator().manual_seed(b))
              for b in batches}
    calibration = calibration or list(np.random.default_rng(0).standard_normal(
        (8, 1, model.in_chans, resolution, resolution), dtype=np.float32))
    calls: dict[str, dict[int, Callable[[], object]]] = {}
    results: dict[str, PathResult] = {}
    gflops = [matmul_gflops(threads)]
    meta = meta_at_resolution(model, resolution, meta)
    options = RuntimeOptions(threads=threads, device="cpu", spin=False)
    with tempfile.TemporaryDirectory(prefix="mobilenetv2-bench-") as tmp:
        for name in paths:
            if on_progress:
                on_progress(f"building {label(name)}")
            before = rss_mb()
            runtime, size_mb = build_runtime(name, model, meta, Path(tmp), options, calibration, files.get(name))
            calls[name] = runners(runtime, inputs, resolution)
            if not calls[name]:
                raise UserError(f"{label(name)} runs batch {runtime.max_batch} only: give it with --batch {runtime.max_batch}")
            calls[name][max(calls[name])]()  # first call: compiles/allocates, and counts towards memory
            results[name] = PathResult(name, size_mb, max(rss_mb() - before, 0.0), precision=runtime.precision,
                                       backend=runtime.backend)
        matmul = matmul_runner()
        for b in batches:
            if on_progress:
                on_progress(f"timing batch {b}: {rounds} interleaved rounds")
            # The matmul is one more candidate of every round, so the limit sees the same load as the paths.
            stats = time_interleaved({**{n: calls[n][b] for n in paths if b in calls[n]}, MATMUL: matmul},
                                     rounds=rounds, warmup=warmup)
            gflops.append(gflops_from_ms(stats.pop(MATMUL).min_ms))
            for n, s in stats.items():
                results[n].median_ms[b], results[n].p90_ms[b] = s.median_ms, s.p90_ms
    gflops.append(matmul_gflops(threads))
    arch = model.arch
    name = f"{arch['name']}(" + ", ".join(f"{k}={v}" for k, v in arch["args"].items()) + ")"
    return BenchmarkReport(name, resolution, threads, count_macs(model, resolution), max(gflops), list(batches),
                           rounds, [results[n] for n in paths], cpu=describe())
