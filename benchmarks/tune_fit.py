"""Which MobileNetV2 fits: one `mobilenetv2 tune --target ...` search, timed, and its front checked.

Runs the given `tune` flags (a width x resolution search on a device target), then prints the wall time, the front
(front.md) and three checks: no front model is dominated by another trained trial, no trial over a budget was trained,
and (tflm) each front file's arena and flash as `info --tflite` reads them against the search's figure.

    python benchmarks/tune_fit.py --data digits --widths 0.35 0.5 0.75 1.0 --resolutions 32 48 64 --sampler grid \\
        --target tflm --max-arena-kib 160 --objectives accuracy arena --pick --epochs 1 --out runs/fit-tflm
"""

from __future__ import annotations

import csv
import logging
import shlex
import sys
import time
from pathlib import Path

from mobilenetv2.cli import build_parser
from mobilenetv2.cli.tune import run
from mobilenetv2.errors import UserError
from mobilenetv2.hardware import describe
from mobilenetv2.tuning.front import COSTS, dominates


def front_checks(out: Path, axes: list[str], target: str) -> list[str]:
    """The checks of a finished search, one line each."""
    rows = list(csv.DictReader((out / "front.csv").open()))
    trained = [r for r in rows if r["accuracy"]]
    point = lambda r: [float(r["accuracy"]), *(float(r[COSTS[a][0]]) for a in axes)]  # noqa: E731
    front = [r for r in trained if r["on_front"] == "True"]
    dominated = [r["trial"] for r in front if any(dominates(point(o), point(r)) for o in trained if o is not r)]
    over_trained = [r["trial"] for r in rows if r["over"] and r["accuracy"]]
    lines = [f"{len(rows)} trials, {len(trained)} trained, {len(rows) - len(trained)} not trained "
             f"({sum(1 for r in rows if r['state'] == 'over budget')} over budget); front: {len(front)}",
             f"front models dominated by another trial: {dominated or 'none'}",
             f"trials over a budget that were trained: {over_trained or 'none'}"]
    if target == "tflm":
        from mobilenetv2.formats import open_runtime

        for path in sorted((out / "front").glob("*.tflite")):
            row = next(r for r in front if path.name.startswith(f"trial_{int(r['trial']):04d}_"))
            arena = open_runtime(path, "tflm").arena_bytes / 1024
            lines.append(f"{path.name}: info --tflite arena {arena:.1f} KiB vs search {float(row['arena_kib']):.1f} KiB "
                         f"({100 * (arena / float(row['arena_kib']) - 1):+.2f}%)")
    return lines


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    flags = sys.argv[1:]
    args = build_parser().parse_args(["tune", *flags])
    print(describe())
    print(f"$ mobilenetv2 tune {shlex.join(flags)}", flush=True)
    start = time.perf_counter()
    try:
        run(args)
    except UserError as exc:
        raise SystemExit(f"error: {exc}") from None
    seconds = time.perf_counter() - start
    out = Path(args.out)
    axes = list(args.objectives[1:]) or (["arena"] if args.target == "tflm" else ["latency"])
    print(f"\nsearch took {seconds:.0f} s\n")
    print((out / "front.md").read_text())
    print("\n".join(front_checks(out, axes, args.target)))


if __name__ == "__main__":
    main()
