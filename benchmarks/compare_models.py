"""MobileNetV2 against its family and torchvision's small CNNs: size, multiply-adds, latency, throughput, memory.

Runs ``mobilenetv2.benchmarking.compare`` on the default candidates (``--quick``: a shorter list, fewer repeats),
with every timing interleaved across the models, and writes the table into benchmarks/README.md's "model-comparison"
section with ratios against MobileNetV2 1.0 at 224 (the reference). Random weights: no accuracy here (see
``mobilenetv2 compare --data ... --epochs N`` for accuracy after the same training budget).

    .venv/bin/python benchmarks/compare_models.py --quick [--threads 2] [--out runs/compare] [--no-write]
"""

from __future__ import annotations

import argparse
import platform
import re
import sys
import time
from pathlib import Path

import torch

from mobilenetv2.benchmarking.compare import DEFAULT_MODELS, QUICK_MODELS, compare, write_outputs
from mobilenetv2.io import atomic_write_text
from mobilenetv2.reporting import format_table

BENCHMARKS = Path(__file__).resolve().parent / "README.md"
SECTION = "<!-- section: model-comparison -->"
REFERENCE = "mobilenet_v2_100"


def section_text(rows, info, args) -> str:
    ref = next(r for r in rows if r.name == REFERENCE)
    table = format_table(
        ["model", "res", "params (M)", "MACs (M)", "size (MB)", "latency b1 (ms)", "x ref", "p90 (ms)",
         f"img/s at b{info['batch_size']}", "x ref", "peak mem (MB)", "Pareto (MACs)"],
        [[r.name, r.resolution, f"{r.params_m:.2f}", f"{r.macs_m:.0f}", f"{r.size_mb:.1f}", f"{r.latency_ms:.1f}",
          f"{r.latency_ms / ref.latency_ms:.2f}", f"{r.latency_p90_ms:.1f}", f"{r.throughput:.1f}",
          f"{r.throughput / ref.throughput:.2f}", "n/a" if r.peak_memory_mb is None else f"{r.peak_memory_mb:.0f}",
          "*" if r.pareto else ""] for r in rows])
    command = "python benchmarks/compare_models.py" + (" --quick" if args.quick else "") + f" --threads {info['threads']}"
    return (f"{SECTION}\n## Model comparison: MobileNetV2 vs its family and torchvision's small CNNs\n\n"
            f"`{command}` (torch {torch.__version__}, {platform.machine()}, {info['threads']} thread(s), eager fp32, "
            f"random weights). Ratios (x ref) are against `{REFERENCE}` at 224 measured in the same run; every timing "
            f"is interleaved across the models over {info['repeats']} rounds (largest spread (p90 - min) / median: "
            f"{max(r.latency_spread for r in rows):.2f}). Peak memory: resident high-water mark of building the model "
            f"and one batch-1 pass, in a fresh process. Measured {time.strftime('%Y-%m-%d')}; on a busy machine only the "
            f"ratios mean anything.\n\n{table}\n")


def update_benchmarks(text: str) -> None:
    current = BENCHMARKS.read_text()  # re-read right before writing: other sections change too
    pattern = re.compile(re.escape(SECTION) + r".*?(?=\n<!-- section: |\Z)", re.S)
    updated = pattern.sub(lambda _m: text.rstrip("\n"), current) if SECTION in current else current.rstrip("\n") + "\n\n" + text
    atomic_write_text(BENCHMARKS, updated if updated.endswith("\n") else updated + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="6 models, 5 rounds (about 5 minutes on 2 busy cores)")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--out", default=None, help="also write compare.md/csv/json/png here")
    parser.add_argument("--no-write", action="store_true", help="print only; leave benchmarks/README.md alone")
    args = parser.parse_args()
    models = QUICK_MODELS if args.quick else DEFAULT_MODELS
    rows, info = compare(models, threads=args.threads, repeats=args.repeats or (5 if args.quick else 15),
                         say=lambda msg: print(f"compare: {msg}", file=sys.stderr, flush=True))
    text = section_text(rows, info, args)
    print(text)
    if args.out:
        write_outputs(rows, info, args.out)
    if not args.no_write:
        update_benchmarks(text)


if __name__ == "__main__":
    main()
