"""Eager inference speed: our MobileNetV2 vs torchvision's ``mobilenet_v2``, side by side in one process.

Same weights in all (ours loads torchvision's state dict), batch 1 and 32 at 224, NCHW and channels_last,
interleaved rounds: torchvision, ours (the same graph), and ours with BatchNorm folded into the convolutions
(``export.fuse_bn``, what `predict`, `Classifier` and `export` run). Prints a Markdown table of medians and
the ratio ours / torchvision (<= 1.0 is as fast or faster). ``--write`` replaces the model-speed section of benchmarks/README.md.

    .venv/bin/python benchmarks/model_speed.py --threads 2 --rounds 30 --write
"""

from __future__ import annotations

import argparse
import platform
import re
from pathlib import Path

import torch
import torchvision

from mobilenetv2 import create_model
from mobilenetv2.models.fuse import fuse_bn
from mobilenetv2.timing import time_interleaved

ROOT = Path(__file__).resolve().parents[1]


def build_models(width: float) -> dict[str, torch.nn.Module]:
    """torchvision's model, ours with the same weights, and ours with BatchNorm folded (our inference path)."""
    reference = torchvision.models.mobilenet_v2(width_mult=width).eval()
    ours = create_model("mobilenet_v2", width_mult=width).eval()
    ours.load_state_dict(reference.state_dict())
    return {"torchvision": reference, "ours": ours, "ours_bn_folded": fuse_bn(ours)}


def measure(width: float, resolution: int, batches: list[int], rounds: int) -> list[dict]:
    rows = []
    for layout, fmt in (("NCHW", torch.contiguous_format), ("channels_last", torch.channels_last)):
        models = {k: m.to(memory_format=fmt) for k, m in build_models(width).items()}
        for batch in batches:
            x = torch.randn(batch, 3, resolution, resolution).contiguous(memory_format=fmt)
            with torch.inference_mode():
                fns = {name: (lambda m=m, x=x: m(x)) for name, m in models.items()}
                stats = time_interleaved(fns, rounds=rounds, warmup=3, iters_per_round=5 if batch == 1 else 1)
            ref = stats["torchvision"].median_ms
            rows.append({
                "batch": batch, "layout": layout, "torchvision_ms": ref,
                "ours_ms": stats["ours"].median_ms, "ratio": stats["ours"].median_ms / ref,
                "folded_ms": stats["ours_bn_folded"].median_ms, "folded_ratio": stats["ours_bn_folded"].median_ms / ref,
                "spread": max(s.spread for s in stats.values()),
            })
    return rows


def to_markdown(rows: list[dict], threads: int, rounds: int, resolution: int, width: float) -> str:
    lines = [
        f"MobileNetV2 {width} at {resolution}, fp32, eager `torch.inference_mode()`, {threads} threads, "
        f"{rounds} interleaved rounds, median per forward pass; {platform.processor() or platform.machine()}, "
        f"torch {torch.__version__}. Ratio = ours / torchvision (<= 1.0: as fast or faster). "
        "Spread = (p90 - min) / median of the noisiest candidate.",
        "",
        "| batch | layout | torchvision (ms) | ours (ms) | ratio | ours, BN folded (ms) | ratio | spread |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(f"| {r['batch']} | {r['layout']} | {r['torchvision_ms']:.2f} | {r['ours_ms']:.2f} | "
                     f"{r['ratio']:.3f} | {r['folded_ms']:.2f} | {r['folded_ratio']:.3f} | {r['spread']:.2f} |")
    return "\n".join(lines)


def write_section(markdown: str) -> None:
    path = ROOT / "benchmarks" / "README.md"
    text = path.read_text()
    body = f"## Eager inference: ours vs torchvision's `mobilenet_v2`\n\nProduced by `benchmarks/model_speed.py`.\n\n{markdown}\n"
    pattern = re.compile(r"## Eager inference: ours vs torchvision's `mobilenet_v2`\n.*?(?=\n<!-- section: |\n## |\Z)", re.S)
    text = pattern.sub(lambda _: body.rstrip("\n"), text, count=1)
    path.write_text(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--resolution", type=int, default=224)
    parser.add_argument("--width", type=float, default=1.0)
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 32])
    parser.add_argument("--write", action="store_true", help="write the table into benchmarks/README.md")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = measure(args.width, args.resolution, args.batches, args.rounds)
    markdown = to_markdown(rows, args.threads, args.rounds, args.resolution, args.width)
    print(markdown)
    if args.write:
        write_section(markdown)


if __name__ == "__main__":
    main()
