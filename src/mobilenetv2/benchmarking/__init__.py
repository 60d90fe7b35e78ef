"""Benchmarking: inference speed of every deployment path (`benchmark`) and model comparison (`compare`).

The timed paths (here, without torch, so that `mobilenetv2 benchmark --help` stays fast): PyTorch's own, and a row
per file and backend derived from the format registry, so that a new format or backend reaches the benchmark.
"""

from __future__ import annotations

from dataclasses import dataclass

from mobilenetv2.backends import BACKENDS
from mobilenetv2.formats.registry import FORMATS

TORCH_PATHS = ("torchvision", "eager", "channels_last", "bn_folded", "compile", "bf16")
BF16_BACKENDS = ("openvino",)  # file backends that compute an fp32 file in bf16 when asked (their Runtime.precisions)
DEFAULT_FORMAT = "onnx"  # the file rows timed by default; the others (on-device, batch 1) with --paths
NAMES = {("onnxruntime", "fp32"): "onnx", ("onnxruntime", "int8"): "int8"}  # else BACKEND, BACKEND_PRECISION


@dataclass(frozen=True)
class FileRow:
    """A file of ``format`` (fp32, or int8 from ``quantize``) timed on ``backend`` in ``precision``."""

    name: str
    format: str
    backend: str
    precision: str  # fp32; bf16: the fp32 file asked to compute in bf16; int8: the quantized file


def file_rows() -> dict[str, FileRow]:
    """Each backend other than torch (its rows are PyTorch's own) on the first format in the registry that export
    writes for it, so that backends sharing a format run the same file: fp32, bf16 where the backend takes it, int8
    where the format quantizes."""
    rows: dict[str, FileRow] = {}
    for entry in (e for e in FORMATS.values() if e.exports):
        for backend in entry.backends:
            if backend == "torch" or not BACKENDS[backend].auto or any(r.backend == backend for r in rows.values()):
                continue
            for precision in ("fp32", *(["bf16"] if backend in BF16_BACKENDS else []), *(["int8"] if entry.quantizes else [])):
                name = NAMES.get((backend, precision), backend if precision == "fp32" else f"{backend}_{precision}")
                rows[name] = FileRow(name, entry.name, backend, precision)
    return rows


FILE_ROWS = file_rows()
PATHS = (*TORCH_PATHS, *FILE_ROWS)  # every path --paths takes
DEFAULT_PATHS = (*TORCH_PATHS, *(n for n, r in FILE_ROWS.items() if r.format == DEFAULT_FORMAT))
