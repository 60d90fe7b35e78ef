"""What the CPU can do for fp32 and int8 inference: model, vector/int8 features, and the backends' kernels.

int8 speed-ups depend on the CPU: onnxruntime's int8 kernels are about twice as fast as fp32 only with VNNI
(AVX-512 VNNI, AVX-VNNI, or AMX) on x86, or dot-product instructions on ARM; without them int8 is barely faster.
"""

from __future__ import annotations

import platform
from dataclasses import dataclass
from pathlib import Path

# (label, /proc/cpuinfo flag) in the order they are printed.
X86_FEATURES = (("AVX2", "avx2"), ("AVX-512F", "avx512f"), ("AVX-512BW", "avx512bw"), ("AVX-512VL", "avx512vl"),
                ("AVX-512 VNNI", "avx512_vnni"), ("AVX-512 BF16", "avx512_bf16"), ("AVX-VNNI", "avx_vnni"),
                ("AMX-TILE", "amx_tile"),
                ("AMX-INT8", "amx_int8"), ("AMX-BF16", "amx_bf16"))
ARM_FEATURES = (("NEON", "asimd"), ("dot-product", "asimddp"), ("i8mm", "i8mm"), ("SVE", "sve"), ("BF16", "bf16"))
INT8_FAST_FLAGS = ("amx_int8", "avx512_vnni", "avx_vnni", "asimddp", "i8mm")
BF16_FLAGS = {"amx_bf16": "AMX-BF16", "avx512_bf16": "AVX-512 BF16", "bf16": "BF16"}  # the fastest first


@dataclass(frozen=True)
class CpuInfo:
    """The CPU's model name, architecture and feature flags (empty when they could not be read)."""

    model: str
    arch: str
    flags: frozenset[str]

    @property
    def is_arm(self) -> bool:
        return self.arch.lower() in ("aarch64", "arm64") or "asimd" in self.flags

    @property
    def features(self) -> list[tuple[str, bool]]:
        """(label, present) for every feature relevant to this architecture."""
        return [(label, flag in self.flags) for label, flag in (ARM_FEATURES if self.is_arm else X86_FEATURES)]

    @property
    def int8_path(self) -> str | None:
        """The fastest int8 instruction family the CPU has (what onnxruntime's MLAS kernels dispatch on), or None."""
        names = {"amx_int8": "AMX", "avx512_vnni": "AVX-512 VNNI", "avx_vnni": "AVX-VNNI", "i8mm": "i8mm",
                 "asimddp": "dot-product"}
        return next((names[f] for f in INT8_FAST_FLAGS if f in self.flags), None)

    @property
    def bf16_path(self) -> str | None:
        """The bf16 instructions the CPU has (AMX-BF16, AVX-512 BF16, ARM BF16), or None: bf16 would be emulated."""
        return next((label for flag, label in BF16_FLAGS.items() if flag in self.flags), None)


def parse_cpuinfo(text: str, arch: str = "") -> CpuInfo:
    """Parse the text of Linux ``/proc/cpuinfo`` (x86 ``flags`` or ARM ``Features``; the first processor)."""
    fields: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip().lower() not in fields:
            fields[key.strip().lower()] = value.strip()
    flags = frozenset((fields.get("flags") or fields.get("features") or "").split())
    model = fields.get("model name") or fields.get("hardware") or fields.get("cpu model") or ""
    if not model and "cpu implementer" in fields:
        model = f"ARM implementer {fields['cpu implementer']} part {fields.get('cpu part', '?')}"
    if not arch:
        arch = "aarch64" if "asimd" in flags else ("x86_64" if "sse2" in flags else "")
    return CpuInfo(model or "unknown CPU", arch or "unknown", flags)


def cpu_info(path: str = "/proc/cpuinfo") -> CpuInfo:
    """This machine's CPU; model from ``platform`` and no flags where ``/proc/cpuinfo`` cannot be read."""
    try:
        return parse_cpuinfo(Path(path).read_text(errors="replace"), platform.machine())
    except OSError:
        return CpuInfo(platform.processor() or "unknown CPU", platform.machine() or "unknown", frozenset())


def int8_expectation(info: CpuInfo) -> str:
    """What int8 (onnxruntime static quantization) can be expected to gain over fp32 on this CPU."""
    if not info.flags:
        return "CPU features unknown: int8 speed-up unknown (about 2x fp32 with VNNI/dot-product, ~1x without)"
    if info.int8_path:
        return f"int8 via {info.int8_path}: int8 expected ~2x fp32"
    return "no VNNI: int8 barely faster than fp32" if not info.is_arm else "no dot-product: int8 barely faster than fp32"


def features_line(info: CpuInfo | None = None) -> str:
    """One line: CPU model, architecture, vector/int8 features (+ present, - absent) and the int8 expectation."""
    info = info or cpu_info()
    if not info.flags:
        return f"CPU: {info.model} ({info.arch}); features unknown (no /proc/cpuinfo); {int8_expectation(info)}"
    marks = " ".join(f"{'+' if present else '-'}{label}" for label, present in info.features)
    return f"CPU: {info.model} ({info.arch}); {marks}; {int8_expectation(info)}"


def backends_line() -> str:
    """One line: torch version and XNNPACK, onnxruntime version and execution providers, OpenVINO's version and what
    its CPU plugin can run (BF16, INT8, ...), each if installed."""
    import torch

    try:
        import torch.backends.xnnpack as xnnpack

        xnnpack_state = "enabled" if xnnpack.enabled else "disabled in this torch build"
    except (ImportError, AttributeError):
        xnnpack_state = "not available"
    parts = [f"torch {torch.__version__.split('+')[0]} ({torch.get_num_threads()} threads, XNNPACK {xnnpack_state})"]
    try:
        import onnxruntime as ort
    except ImportError:
        parts.append("onnxruntime not installed")
    else:
        parts.append(f"onnxruntime {ort.__version__} (providers: {', '.join(ort.get_available_providers())}; "
                     f"int8 runs on CPUExecutionProvider/MLAS)")
    try:
        import openvino as ov
    except ImportError:
        pass
    else:
        capabilities = ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
        parts.append(f"openvino {ov.__version__.split('-')[0]} (CPU plugin: {', '.join(capabilities)})")
    return "backends: " + "; ".join(parts)


def describe() -> str:
    """The two lines printed at the top of every speed report: the CPU's features and the backends."""
    return f"{features_line()}\n{backends_line()}"
