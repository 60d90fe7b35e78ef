"""Inference speed of one model through every path the project offers, timed interleaved in one run.

Paths: torchvision's eager ``mobilenet_v2`` (the reference), our eager model (NCHW, channels_last, BN folded),
torch.compile, onnxruntime fp32 and onnxruntime int8 (static QDQ, per-channel). Each is timed at every batch size;
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
INT8_PATHS = ("int8", "tflite")  # not bound by the fp32 compute limit (the published TFLite files are uint8)


@dataclass
class PathResult:
    name: str
    size_mb: float
    memory_mb: float                                      # RSS growth when built and run once (see `rss_mb`)
    median_ms: dict[int, float] = field(default_factory=dict)   # batch -> median ms per call
    p90_ms: dict[int, float] = field(default_factory=dict)


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
    cpu: str = ""                                         # `hardware.describe()`: features and runtimes

    def limit_ms(self, batch: int) -> float:
        return 2 * self.macs * batch / (self.gflops * 1e9) * 1e3

    def below_limit(self) -> list[tuple[str, int, float]]:
        """(path, batch, median / limit) for every fp32 median faster than the compute limit: it was disturbed."""
        return [(p.name, b, p.median_ms[b] / self.limit_ms(b)) for p in self.paths for b in self.batches
                if p.name not in INT8_PATHS and b in p.median_ms and p.median_ms[b] < self.limit_ms(b)]

    def to_dict(self) -> dict:
        return {**asdict(self), "limit_ms": {b: self.limit_ms(b) for b in self.batches},
                "below_limit": [{"path": n, "batch": b, "ratio": round(r, 3)} for n, b, r in self.below_limit()]}

    def table(self) -> str:
        from mobilenetv2.reporting import format_table

        # the ratios are to torchvision's twin (classifiers), else to the TFLite interpreter, else there are none
        ref = next((p for p in self.paths if p.name == REFERENCE), None) or next(
            (p for p in self.paths if p.name == "tflite"), None)
        headers = ["path", "size MB", "mem MB"]
        for b in self.batches:
            versus = [f"b{b} vs {'torchvision' if ref.name == REFERENCE else 'TFLite'}"] if ref else []
            headers += [f"b{b} median ms", f"b{b} p90 ms", f"b{b} img/s", *versus, f"b{b} / limit"]
        rows = []
        for p in self.paths:
            row = [LABELS[p.name], f"{p.size_mb:.2f}", f"{p.memory_mb:.0f}"]
            for b in self.batches:
                if b not in p.median_ms:  # the TFLite file runs batch 1 only
                    row += ["-"] * (5 if ref else 4)
                    continue
                ms = p.median_ms[b]
                speedup = [f"{ref.median_ms[b] / ms:.2f}x" if b in ref.median_ms else "-"] if ref else []
                ratio = ms / self.limit_ms(b)
                limit = "- (int8)" if p.name in INT8_PATHS else f"{ratio:.2f}" + (" (!)" if ratio < 1 else "")
                row += [f"{ms:.2f}", f"{p.p90_ms[b]:.2f}", f"{1e3 * b / ms:.0f}", *speedup, limit]
            rows.append(row)
        limits = ", ".join(f"batch {b}: {self.limit_ms(b):.2f} ms" for b in self.batches)
        text = (f"{self.cpu}\n" if self.cpu else "") + (
            f"{self.model} at {self.resolution}px, {self.threads} threads, {self.macs / 1e6:.0f}M MACs; compute limit "
            f"from the best fp32 matmul ({self.gflops:.0f} GFLOP/s; fp32 paths only): {limits}\n\n" + format_table(headers, rows))
        faster = self.below_limit()
        if faster:
            shown = ", ".join(f"{LABELS[n]} at batch {b} ({r:.2f}x the limit)" for n, b, r in faster)
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


def _torch_runner(module: nn.Module, x: torch.Tensor) -> Callable[[], object]:
    def run() -> object:
        with torch.inference_mode():
            return module(x)
    return run


def meta_at_resolution(model: nn.Module, resolution: int, meta: CheckpointMeta | None = None) -> CheckpointMeta:
    """``meta`` (or a bare model's) with its input size set to ``resolution`` (ONNX files have a static image size)."""
    meta = meta or CheckpointMeta.for_model(model)
    return meta.replace(preprocessing=replace(meta.preprocessing, input_size=resolution))


def build_path(name: str, model: nn.Module, inputs: dict[int, torch.Tensor], workdir: Path, threads: int,
               calibration: list[np.ndarray], meta: CheckpointMeta | None = None,
               ) -> tuple[dict[int, Callable[[], object]], float]:
    """Zero-argument callables per batch size for one path, and the path's model size in MB.

    ``meta``: the checkpoint's (its task picks the comparison that verifies the ONNX export), else the bare model's."""
    from mobilenetv2.export.fuse import fuse_bn

    param_mb = sum(t.numel() * t.element_size() for t in model.state_dict().values()) / 1e6
    cl = {b: x.contiguous(memory_format=torch.channels_last) for b, x in inputs.items()}
    if name == "torchvision":
        twin = torchvision_twin(model)
        return {b: _torch_runner(twin, x) for b, x in inputs.items()}, param_mb
    if name == "eager":
        return {b: _torch_runner(model, x) for b, x in inputs.items()}, param_mb
    if name == "channels_last":
        m = copy.deepcopy(model).to(memory_format=torch.channels_last)
        return {b: _torch_runner(m, x) for b, x in cl.items()}, param_mb
    fused = fuse_bn(model).to(memory_format=torch.channels_last)
    fused_mb = sum(t.numel() * t.element_size() for t in fused.state_dict().values()) / 1e6
    if name == "bn_folded":
        return {b: _torch_runner(fused, x) for b, x in cl.items()}, fused_mb
    if name == "compile":
        compiled = torch.compile(fused, dynamic=False)
        return {b: _torch_runner(compiled, x) for b, x in cl.items()}, fused_mb
    from mobilenetv2.export.exporter import export_model
    from mobilenetv2.export.runtime import OnnxBackend

    fp32_path = workdir / "fp32.onnx"
    if not fp32_path.exists():
        export_model(model, fp32_path, "onnx", meta=meta_at_resolution(model, inputs[min(inputs)].shape[-1], meta))
    path = fp32_path
    if name == "int8":
        from mobilenetv2.export.quantize import quantize_onnx

        path = quantize_onnx(fp32_path, workdir / "int8.onnx", calibration)
    backend = OnnxBackend(path, threads, spin=False)  # spinning idle threads would slow the interleaved paths
    arrays = {b: x.numpy() for b, x in inputs.items()}
    return {b: (lambda a=a: backend(a)) for b, a in arrays.items()}, path.stat().st_size / 1e6


@restores_threads
def benchmark_inference(model: nn.Module, *, resolution: int = 224, threads: int = 2, batches: tuple[int, ...] = (1, 32),
                        paths: tuple[str, ...] = PATHS, rounds: int = 20, warmup: int = 3,
                        calibration: list[np.ndarray] | None = None, tflite: str | None = None,
                        meta: CheckpointMeta | None = None,
                        on_progress: Callable[[str], None] | None = None) -> BenchmarkReport:
    """Build every requested path, then time them all interleaved, batch size by batch size.

    ``tflite``: also time the TFLite interpreter on this file (batch 1, its own input type: uint8 for the published
    files, on the same threads); torchvision's twin is timed only for MobileNetV2 classifiers (it has no segmentation
    head). ``meta``: the checkpoint's metadata, when the model comes from one (its task verifies the ONNX export).
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
    if tflite:
        paths = (*paths, "tflite")
    inputs = {b: torch.randn(b, model.in_chans, resolution, resolution, generator=torch.Generator().manual_seed(b))
              for b in batches}
    calibration = calibration or list(np.random.default_rng(0).standard_normal(
        (8, 1, model.in_chans, resolution, resolution), dtype=np.float32))
    runners: dict[str, dict[int, Callable[[], object]]] = {}
    results: dict[str, PathResult] = {}
    gflops = [matmul_gflops(threads)]
    with tempfile.TemporaryDirectory(prefix="mobilenetv2-bench-") as tmp:
        for name in paths:
            if on_progress:
                on_progress(f"building {LABELS[name]}")
            before = rss_mb()
            if name == "tflite":
                from mobilenetv2.benchmarking.tflite import file_size_mb, tflite_runner

                runners[name], size_mb = {1: tflite_runner(tflite, threads, resolution)}, file_size_mb(tflite)
            else:
                runners[name], size_mb = build_path(name, model, inputs, Path(tmp), threads, calibration, meta)
            runners[name][max(runners[name])]()  # first call: compiles/allocates, and counts towards memory
            results[name] = PathResult(name, size_mb, max(rss_mb() - before, 0.0))
        matmul = matmul_runner()
        for b in batches:
            if on_progress:
                on_progress(f"timing batch {b}: {rounds} interleaved rounds")
            # The matmul is one more candidate of every round, so the limit sees the same load as the paths.
            stats = time_interleaved({**{n: runners[n][b] for n in paths if b in runners[n]}, MATMUL: matmul},
                                     rounds=rounds, warmup=warmup)
            gflops.append(gflops_from_ms(stats.pop(MATMUL).min_ms))
            for n, s in stats.items():
                results[n].median_ms[b], results[n].p90_ms[b] = s.median_ms, s.p90_ms
    gflops.append(matmul_gflops(threads))
    arch = model.arch
    name = f"{arch['name']}(" + ", ".join(f"{k}={v}" for k, v in arch["args"].items()) + ")"
    return BenchmarkReport(name, resolution, threads, count_macs(model, resolution), max(gflops), list(batches),
                           rounds, [results[n] for n in paths], cpu=describe())
