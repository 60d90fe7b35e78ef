"""Inference speed of one model through every path the project offers, timed interleaved in one run.

Paths: torchvision's eager ``mobilenet_v2`` (the reference), our eager model (NCHW, channels_last, BN folded),
torch.compile, PyTorch bf16; a row per file and backend from the format registry (``benchmarking.FILE_ROWS``; by
default onnxruntime fp32 and int8 (static QDQ, per-channel) and OpenVINO on the same two ONNX files (fp32 pinned to
f32, bf16, int8); ExecuTorch, LiteRT and Core ML on request), and given TFLite files in the LiteRT interpreter. Each
path is a ``Runtime`` (the interface every backend implements), timed on its own inputs (``runtime.run`` on what
``runtime.to_native`` made of the same images) at every batch size it takes; each row says its precision and how far
its outputs are from eager fp32's (top-1 agreement and max |logit diff|, on real photos when given). Ratios are given
to the reference and to a compute limit of the row's precision measured on the spot: a large matmul's GFLOP/s in fp32
(and in bf16 where the CPU has bf16: AMX) with the same thread count, timed before, inside (as candidates of every
interleaved round) and after the paths, the best of all kept, so that load on the machine lowers the paths and the
limits alike (limit_ms = 2 * MACs * batch / GFLOP/s). int8 rows have no limit: torch has no int8 matmul that uses
AMX/VNNI to measure one with. A path that still comes out faster than its limit is reported as such, never as a silent
ratio < 1.
"""

from __future__ import annotations

import copy
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from torch import nn

from mobilenetv2.backends import BACKENDS
from mobilenetv2.backends.base import Runtime, RuntimeOptions
from mobilenetv2.backends.torch import TorchRuntime
from mobilenetv2.benchmarking import DEFAULT_PATHS, FILE_ROWS, PATHS, FileRow
from mobilenetv2.errors import UserError
from mobilenetv2.formats.registry import FORMATS
from mobilenetv2.hardware import describe
from mobilenetv2.timing import restores_threads, time_interleaved
from mobilenetv2.weights import CheckpointMeta

REFERENCE = "torchvision"
MATMUL = "fp32 matmul (compute limit)"
MATMULS = {"fp32": MATMUL, "bf16": "bf16 matmul (bf16 compute limit)"}  # precision -> its limit's timed candidate
LABELS = {
    "torchvision": "torchvision eager fp32 (reference)", "eager": "eager fp32 NCHW",
    "channels_last": "eager fp32 channels_last", "bn_folded": "eager fp32 BN folded + channels_last",
    "compile": "torch.compile fp32 (BN folded, channels_last)", "bf16": "eager bf16 (BN folded + channels_last)",
    "onnx": "onnxruntime fp32", "int8": "onnxruntime int8 (QDQ, per-channel)",
    "openvino": "OpenVINO fp32 (the fp32 .onnx)", "openvino_bf16": "OpenVINO bf16 (the fp32 .onnx)",
    "openvino_int8": "OpenVINO int8 (the QDQ .onnx)", "tflite": "TFLite interpreter (the --tflite file, XNNPACK)",
}
TFLITE_PATH = "tflite:"  # a --tflite file's path name: "tflite:" + the file's name


def label(name: str) -> str:
    """How the table names a path (a --tflite file by its file name, a file row without a label of its own by its
    backend, precision and file)."""
    if name.startswith(TFLITE_PATH):
        return f"LiteRT interpreter (XNNPACK): {name[len(TFLITE_PATH):]}"
    if name in LABELS:
        return LABELS[name]
    row = FILE_ROWS[name]
    file = f"{'int8' if row.precision == 'int8' else 'fp32'} {FORMATS[row.format].suffixes[0]}"
    return f"{row.backend} {row.precision} (the {file})"


def needs_bf16(name: str) -> bool:
    return name == "bf16" or (name in FILE_ROWS and FILE_ROWS[name].precision == "bf16")


@dataclass
class PathResult:
    name: str
    size_mb: float
    memory_mb: float                                      # RSS growth when built and run once (see `rss_mb`)
    median_ms: dict[int, float] = field(default_factory=dict)   # batch -> median ms per call
    p90_ms: dict[int, float] = field(default_factory=dict)
    precision: str = "fp32"                               # the runtime's: each path is held to its precision's limit
    backend: str = "torch"
    agreement: float | None = None                        # same top-1 as eager fp32 (images, pixels or anchors)
    max_diff: float | None = None                         # max |output difference| to eager fp32


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
    limits: dict[str, float] = field(default_factory=dict)  # other precisions' best matmul GFLOP/s (bf16)
    agreement_on: str = ""                                # the images the agreement with eager fp32 was measured on
    skipped: list[str] = field(default_factory=list)      # paths this machine cannot run, and why

    def limit_ms(self, batch: int, precision: str = "fp32") -> float | None:
        """The compute limit of ``precision`` at ``batch`` (None: no limit measured for it, e.g. int8)."""
        gflops = self.gflops if precision == "fp32" else self.limits.get(precision)
        return 2 * self.macs * batch / (gflops * 1e9) * 1e3 if gflops else None

    def below_limit(self) -> list[tuple[str, int, float]]:
        """(path, batch, median / limit) for every median faster than its precision's limit: the limit was disturbed."""
        found = []
        for p in self.paths:
            for b in self.batches:
                limit = self.limit_ms(b, p.precision)
                if limit is not None and b in p.median_ms and p.median_ms[b] < limit:
                    found.append((p.name, b, p.median_ms[b] / limit))
        return found

    def to_dict(self) -> dict:
        limits = {precision: {b: self.limit_ms(b, precision) for b in self.batches} for precision in ("fp32", *self.limits)}
        return {**asdict(self), "limit_ms": limits["fp32"], "limit_ms_by_precision": limits,
                "below_limit": [{"path": n, "batch": b, "ratio": round(r, 3)} for n, b, r in self.below_limit()]}

    def limits_line(self) -> str:
        """The compute limit of each precision, and that int8 has none."""
        parts = []
        for precision, gflops in {"fp32": self.gflops, **self.limits}.items():
            at = ", ".join(f"batch {b}: {self.limit_ms(b, precision):.2f} ms" for b in self.batches)
            parts.append(f"{precision} {gflops:.0f} GFLOP/s ({at})")
        if any(p.precision not in ("fp32", *self.limits) for p in self.paths):
            others = sorted({p.precision for p in self.paths} - {"fp32", *self.limits})
            parts.append(f"{'/'.join(others)}: none measured (no such matmul to time here), not held to a limit")
        return "compute limits from the best matmul of each precision: " + "; ".join(parts)

    def table(self) -> str:
        from mobilenetv2.reporting import format_table

        # the ratios are to torchvision's twin (classifiers), else to the TFLite interpreter, else there are none
        ref = next((p for p in self.paths if p.name == REFERENCE), None) or next(
            (p for p in self.paths if p.name.startswith(TFLITE_PATH)), None)
        headers = ["path", "precision", "size MB", "mem MB"]
        for b in self.batches:
            versus = [f"b{b} vs {'torchvision' if ref.name == REFERENCE else 'TFLite'}"] if ref else []
            headers += [f"b{b} median ms", f"b{b} p90 ms", f"b{b} img/s", *versus, f"b{b} / limit"]
        headers.append("vs eager fp32: top-1 agree, max diff")
        rows = []
        for p in self.paths:
            row = [label(p.name), p.precision, f"{p.size_mb:.2f}", f"{p.memory_mb:.0f}"]
            for b in self.batches:
                if b not in p.median_ms:  # the TFLite file runs batch 1 only
                    row += ["-"] * (5 if ref else 4)
                    continue
                ms = p.median_ms[b]
                speedup = [f"{ref.median_ms[b] / ms:.2f}x" if b in ref.median_ms else "-"] if ref else []
                limit = self.limit_ms(b, p.precision)
                shown = f"- (no {p.precision} limit)" if limit is None else f"{ms / limit:.2f}" + (" (!)" if ms < limit else "")
                row += [f"{ms:.2f}", f"{p.p90_ms[b]:.2f}", f"{1e3 * b / ms:.0f}", *speedup, shown]
            row.append("-" if p.agreement is None else f"{p.agreement:.1%}, {p.max_diff:.2g}")
            rows.append(row)
        text = (f"{self.cpu}\n" if self.cpu else "") + (
            f"{self.model} at {self.resolution}px, {self.threads} threads, {self.macs / 1e6:.0f}M MACs; {self.limits_line()}"
            + (f"; agreement with eager fp32 on {self.agreement_on}" if self.agreement_on else "") + "\n\n"
            + format_table(headers, rows))
        if self.skipped:
            text += "\nnot run here: " + "; ".join(self.skipped)
        faster = self.below_limit()
        if faster:
            shown = ", ".join(f"{label(n)} at batch {b} ({r:.2f}x the limit)" for n, b, r in faster)
            text += (f"\nwarning: faster than the measured compute limit: {shown}; the limit's matmul was slowed down "
                     "(machine under load?), so the '/ limit' ratios are not meaningful in this run")
        return text


MATMUL_N = 1024


def matmul_runner(n: int = MATMUL_N, dtype: torch.dtype = torch.float32) -> Callable[[], object]:
    """A zero-argument n x n GEMM (2 * n**3 FLOPs) in ``dtype`` (bf16 runs on AMX where the CPU has it), to be timed
    beside the paths."""
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    return lambda: a @ b


def gflops_from_ms(ms: float, n: int = MATMUL_N) -> float:
    return 2 * n**3 / (ms * 1e-3) / 1e9


@restores_threads
def matmul_gflops(threads: int, n: int = MATMUL_N, seconds: float = 0.5, dtype: torch.dtype = torch.float32) -> float:
    """GEMM throughput in ``dtype`` with ``threads`` threads (the best call in ``seconds``): the CPU's practical
    ceiling for that precision."""
    torch.set_num_threads(threads)
    run = matmul_runner(n, dtype)
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
    from mobilenetv2.formats import open_runtime

    if name.startswith(TFLITE_PATH):
        path = Path(tflite)
        return open_runtime(path, "litert", options.threads), path.stat().st_size / 1e6
    if name in FILE_ROWS:
        return file_runtime(FILE_ROWS[name], model, meta, workdir, options, calibration)
    return torch_runtime(name, model, meta, options)


def torch_runtime(name: str, model: nn.Module, meta: CheckpointMeta, options: RuntimeOptions) -> tuple[Runtime, float]:
    """One of PyTorch's own paths, and its parameters' size in MB."""
    from mobilenetv2.models.fuse import fuse_bn

    if name == "torchvision":
        return TorchRuntime(torchvision_twin(model), meta, options=options), param_mb(model)
    if name == "eager":
        return TorchRuntime(model, meta, options=options), param_mb(model)
    if name == "channels_last":
        return TorchRuntime(copy.deepcopy(model), meta, options=options, channels_last=True), param_mb(model)
    fused = fuse_bn(model).to(memory_format=torch.channels_last)
    module = torch.compile(fused, dynamic=False) if name == "compile" else fused
    precision = "bf16" if name == "bf16" else "fp32"
    return TorchRuntime(module, meta, options=options, channels_last=True, precision=precision), param_mb(fused)


def file_runtime(row: FileRow, model: nn.Module, meta: CheckpointMeta, workdir: Path, options: RuntimeOptions,
                 calibration: list[np.ndarray]) -> tuple[Runtime, float]:
    """A file row's file on its backend (no spinning: idle threads of one session would slow the paths interleaved
    with it), and the file's size in MB (with its companions)."""
    from mobilenetv2.formats import get_format

    path = model_file(model, meta, row.format, workdir, calibration if row.precision == "int8" else None)
    target = get_format(row.format)
    runtime = target.open(path, row.backend, options, precision="bf16" if row.precision == "bf16" else None)
    return runtime, sum(p.stat().st_size for p in target.outputs(path) if p.is_file()) / 1e6


def model_file(model: nn.Module, meta: CheckpointMeta, fmt: str, workdir: Path, calibration: list[np.ndarray] | None) -> Path:
    """The model's fp32 file of format ``fmt`` in ``workdir``, or (with ``calibration``) its int8 file as ``quantize``
    makes it with its default options; made once, shared by every backend of the format so that all run the same file."""
    from mobilenetv2.export.exporter import export_model
    from mobilenetv2.formats import get_format
    from mobilenetv2.formats.base import QuantizeOptions

    target = get_format(fmt)
    fp32_path, int8_path = workdir / f"fp32{target.suffix}", workdir / f"int8{target.suffix}"
    if not fp32_path.exists():
        export_model(model, fp32_path, fmt, meta=meta)
    if calibration is None:
        return fp32_path
    if not int8_path.exists():
        target.quantize(model, int8_path, meta, calibration, QuantizeOptions(), fp32_path=fp32_path)
        target.finish(int8_path, meta, "int8")
    return int8_path


def unavailable(name: str) -> str | None:
    """Why this machine cannot run path ``name`` (no bf16 instructions, its backend's package not installed or not
    for this system), or None."""
    from mobilenetv2.extras import available
    from mobilenetv2.hardware import cpu_info

    if needs_bf16(name) and cpu_info().bf16_path is None:
        return f"{label(name)}: this CPU has no bf16 instructions (AMX-BF16, AVX-512 BF16)"
    backend = BACKENDS[FILE_ROWS[name].backend] if name in FILE_ROWS else None
    if backend and backend.package and not available(backend.package):
        return f"{label(name)}: {backend.package} is not installed (pip install 'mobilenetv2[{backend.extra}]')"
    if backend and backend.platform and sys.platform != backend.platform:
        return f"{label(name)}: {backend.name} runs on {backend.platform} only, not {sys.platform}"
    return None


def agreement_batch(meta: CheckpointMeta, images: list[str] | None, fallback: torch.Tensor) -> tuple[torch.Tensor, str]:
    """Real photos (files, folders, globs; up to 64) preprocessed as the model expects, or the timing images."""
    from mobilenetv2.formats.verify import verification_batch

    if not images:
        return fallback, f"{len(fallback)} random images (give photos for real ones)"
    from mobilenetv2.data.images import find_images

    found = find_images(list(images))
    if not found:
        raise UserError(f"--images: no images found in {', '.join(images)}")
    spread = [found[i * len(found) // min(len(found), 64)] for i in range(min(len(found), 64))]  # every class, not the first
    batch, _ = verification_batch(meta.preprocessing, [str(p) for p in spread], limit=64)
    return batch, f"{len(batch)} real images"


def measure_agreement(runtimes: dict[str, Runtime], model: nn.Module, meta: CheckpointMeta,
                      batch: torch.Tensor) -> dict[str, tuple[float, float]]:
    """path -> (top-1 agreement, max |diff|) of its outputs with eager fp32's on ``batch`` (where the shapes match)."""
    from mobilenetv2.formats.verify import OutputComparison
    from mobilenetv2.tasks import get_task

    with torch.inference_mode():
        reference = np.concatenate([model(part).numpy() for part in batch.split(16)])
    found = {}
    for name, runtime in runtimes.items():
        outputs = runtime(batch.numpy())
        if outputs.shape != reference.shape:  # e.g. a published TFLite file with a background class
            continue
        comparison = OutputComparison(get_task(meta.task))
        comparison.update(reference, outputs)
        result = comparison.result()
        found[name] = (float(result["agreement"]), float(result["max_logit_diff"]))
    return found


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
                        paths: tuple[str, ...] = DEFAULT_PATHS, rounds: int = 20, warmup: int = 3,
                        calibration: list[np.ndarray] | None = None, tflite: str | list[str] | None = None,
                        meta: CheckpointMeta | None = None, images: list[str] | None = None,
                        on_progress: Callable[[str], None] | None = None) -> BenchmarkReport:
    """Build every requested path, then time them all interleaved, batch size by batch size.

    ``tflite``: also time the TFLite interpreter on this file or these files (batch 1, each its own input type:
    uint8 for the published files, on the same threads; our int8 export beside Google's file, say); torchvision's
    twin is timed only for MobileNetV2 classifiers (it has no segmentation head). ``meta``: the checkpoint's
    metadata, when the model comes from one (its task verifies the exported files).
    ``calibration``: batches for the int8 paths (default: 8 seeded random images, one a batch, which bounds the
    calibration's memory at large sizes; minmax ranges do not depend on the batching). ``images``: photos on which
    each path's outputs are compared with eager fp32's (default: the timing's random images). Paths this machine
    cannot run (bf16 without bf16 instructions, a backend whose package is not installed) are left out and listed.
    """
    from mobilenetv2.analysis import count_macs

    check_settings(paths, threads, rounds, batches)
    torch.set_num_threads(threads)
    model = model.eval()
    paths, files = requested_paths(model, paths, tflite)
    skipped = [why for why in map(unavailable, paths) if why]
    paths = tuple(p for p in paths if unavailable(p) is None)
    inputs = {b: torch.randn(b, model.in_chans, resolution, resolution, generator=torch.Generator().manual_seed(b))
              for b in batches}
    calibration = calibration or list(np.random.default_rng(0).standard_normal(
        (8, 1, model.in_chans, resolution, resolution), dtype=np.float32))
    precisions = {"fp32": torch.float32, **({"bf16": torch.bfloat16} if any(map(needs_bf16, paths)) else {})}
    gflops = {precision: [matmul_gflops(threads, dtype=dtype)] for precision, dtype in precisions.items()}
    meta = meta_at_resolution(model, resolution, meta)
    options = RuntimeOptions(threads=threads, device="cpu", spin=False)
    with tempfile.TemporaryDirectory(prefix="mobilenetv2-bench-") as tmp:
        calls, results, runtimes = build_paths(paths, model, meta, Path(tmp), options, calibration, files, inputs,
                                               resolution, on_progress)
        _progress(on_progress, "comparing every path's outputs with eager fp32's")
        agreement_on = record_agreement(results, runtimes, model, meta, images, inputs[max(batches)])
        time_batches(calls, results, paths, batches, precisions, gflops, rounds, warmup, on_progress)
    for precision, dtype in precisions.items():
        gflops[precision].append(matmul_gflops(threads, dtype=dtype))
    best = {precision: max(values) for precision, values in gflops.items()}
    return BenchmarkReport(model_name(model), resolution, threads, count_macs(model, resolution), best.pop("fp32"),
                           list(batches), rounds, [results[n] for n in paths], cpu=describe(), limits=best,
                           agreement_on=agreement_on, skipped=skipped)


def _progress(on_progress: Callable[[str], None] | None, message: str) -> None:
    if on_progress:
        on_progress(message)


def check_settings(paths: tuple[str, ...], threads: int, rounds: int, batches: tuple[int, ...]) -> None:
    """One line for an unknown path, or a thread, round or batch count below 1."""
    unknown = [p for p in paths if p not in PATHS]
    if unknown:
        raise UserError(f"unknown path(s) {', '.join(unknown)}; allowed: {', '.join(PATHS)}")
    if threads < 1 or rounds < 1 or not batches or min(batches) < 1:
        raise UserError("--threads, --rounds and every --batch must be >= 1")


def requested_paths(model: nn.Module, paths: tuple[str, ...],
                    tflite: str | list[str] | None) -> tuple[tuple[str, ...], dict[str, str]]:
    """(the paths to time: torchvision's twin only for MobileNetV2, then a row per --tflite file; path -> that file)."""
    if not model.arch["name"].startswith("mobilenet_v2"):
        paths = tuple(p for p in paths if p != REFERENCE)
    files: dict[str, str] = {}
    for file in [tflite] if isinstance(tflite, str) else tflite or []:
        name = f"{TFLITE_PATH}{Path(file).name}"
        files[name if name not in files else f"{name} ({len(files) + 1})"] = file
    return (*paths, *files), files


def build_paths(paths: tuple[str, ...], model: nn.Module, meta: CheckpointMeta, workdir: Path, options: RuntimeOptions,
                calibration: list[np.ndarray], files: dict[str, str], inputs: dict[int, torch.Tensor], resolution: int,
                on_progress: Callable[[str], None] | None,
                ) -> tuple[dict[str, dict[int, Callable[[], object]]], dict[str, PathResult], dict[str, Runtime]]:
    """Each path's runtime, its calls per batch size (run once: the first call compiles and allocates, and counts
    towards its memory), and its result so far (size, memory, precision, backend)."""
    calls: dict[str, dict[int, Callable[[], object]]] = {}
    results: dict[str, PathResult] = {}
    runtimes: dict[str, Runtime] = {}
    for name in paths:
        _progress(on_progress, f"building {label(name)}")
        before = rss_mb()
        runtime, size_mb = build_runtime(name, model, meta, workdir, options, calibration, files.get(name))
        calls[name] = runners(runtime, inputs, resolution)
        if not calls[name]:
            raise UserError(f"{label(name)} runs batch {runtime.max_batch} only: give it with --batch {runtime.max_batch}")
        calls[name][max(calls[name])]()
        results[name] = PathResult(name, size_mb, max(rss_mb() - before, 0.0), precision=runtime.precision,
                                   backend=runtime.backend)
        runtimes[name] = runtime
    return calls, results, runtimes


def record_agreement(results: dict[str, PathResult], runtimes: dict[str, Runtime], model: nn.Module, meta: CheckpointMeta,
                     images: list[str] | None, fallback: torch.Tensor) -> str:
    """Each path's agreement with eager fp32 into its result; what it was measured on."""
    batch, agreement_on = agreement_batch(meta, images, fallback)
    for name, (same, diff) in measure_agreement(runtimes, model, meta, batch).items():
        results[name].agreement, results[name].max_diff = same, diff
    return agreement_on


def time_batches(calls: dict[str, dict[int, Callable[[], object]]], results: dict[str, PathResult], paths: tuple[str, ...],
                 batches: tuple[int, ...], precisions: dict[str, torch.dtype], gflops: dict[str, list[float]], rounds: int,
                 warmup: int, on_progress: Callable[[str], None] | None) -> None:
    """Time every path interleaved, batch size by batch size, with the matmuls of each precision as more candidates of
    every round (so the limits see the same load as the paths); medians into the results, GFLOP/s into ``gflops``."""
    matmuls = {MATMULS[precision]: matmul_runner(dtype=dtype) for precision, dtype in precisions.items()}
    for b in batches:
        _progress(on_progress, f"timing batch {b}: {rounds} interleaved rounds")
        stats = time_interleaved({**{n: calls[n][b] for n in paths if b in calls[n]}, **matmuls}, rounds=rounds, warmup=warmup)
        for precision in precisions:
            gflops[precision].append(gflops_from_ms(stats.pop(MATMULS[precision]).min_ms))
        for n, s in stats.items():
            results[n].median_ms[b], results[n].p90_ms[b] = s.median_ms, s.p90_ms


def model_name(model: nn.Module) -> str:
    arch = model.arch
    return f"{arch['name']}(" + ", ".join(f"{k}={v}" for k, v in arch["args"].items()) + ")"
