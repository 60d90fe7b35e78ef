"""Hyperparameter search on the built-in digits: a seeded random search with median pruning vs the default config.

In one run: trains the default `mobilenetv2 train` config (only --epochs set), then runs `mobilenetv2 tune` with
``examples/space.yaml`` (lr, weight decay, width, label smoothing, batch size), the same epochs per trial, and
prints the exact commands and a Markdown table: best validation accuracy, wall time, trials completed/pruned, and
the ratio of the search's best to the default. Both figures are validation accuracy on the same split, which the
search also selected on (the search's figure is therefore optimistic by its selection).

    python benchmarks/tune_digits.py [--trials 12] [--epochs 3] [--out runs/tune-digits] [--limit-batches N]
"""

from __future__ import annotations

import argparse
import json
import shlex
import time
from pathlib import Path

from optuna.trial import TrialState

from mobilenetv2.cli import build_parser
from mobilenetv2.cli.train import config_from_args
from mobilenetv2.cli.tune import base_config
from mobilenetv2.training import train
from mobilenetv2.tuning import TuneConfig, tune

SPACE = Path(__file__).resolve().parents[1] / "examples" / "space.yaml"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=12, help="trials of the search (default 12)")
    parser.add_argument("--epochs", type=int, default=3, help="epochs of the default run and of every trial (default 3)")
    parser.add_argument("--limit-batches", type=int, default=0, help="training batches per epoch (0: all; for a quick check)")
    parser.add_argument("--out", type=Path, default=Path("runs/tune-digits"), help="where runs are written")
    args = parser.parse_args()
    if (args.out / "tune" / "study.db").exists():
        raise SystemExit(f"{args.out / 'tune'} holds an earlier study (it would resume); pass another --out")
    common = ["--data", "digits", "--epochs", str(args.epochs), "--limit-batches", str(args.limit_batches),
              "--seed", "0", "--no-progress"]

    default_flags = [*common, "--out", str(args.out / "default")]
    print(f"$ mobilenetv2 train {shlex.join(default_flags)}", flush=True)
    start = time.perf_counter()
    default = train(config_from_args(build_parser().parse_args(["train", *default_flags])))
    default_s = time.perf_counter() - start

    tune_flags = ["--space", str(SPACE), "--trials", str(args.trials), "--sampler", "random", "--pruner", "median",
                  "--out", str(args.out / "tune"), *common]
    print(f"\n$ mobilenetv2 tune {shlex.join(tune_flags)}", flush=True)
    targs = build_parser().parse_args(["tune", *tune_flags])
    cfg = TuneConfig(space=targs.space, trials=targs.trials, sampler=targs.sampler, pruner=targs.pruner,
                     out=targs.out, seed=targs.seed or 0)
    start = time.perf_counter()
    search = tune(cfg, base_config(targs))
    search_s = time.perf_counter() - start
    states = [t.state for t in search.study.trials]

    results = {
        "default": {"val_acc": default.best_metric, "seconds": default_s,
                    "command": "mobilenetv2 train " + shlex.join(default_flags)},
        "search": {"val_acc": search.best_value, "seconds": search_s, "best_params": search.best_params,
                   "complete": states.count(TrialState.COMPLETE), "pruned": states.count(TrialState.PRUNED),
                   "command": "mobilenetv2 tune " + shlex.join(tune_flags)},
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(results, indent=2, default=str))
    ratio = search.best_value / default.best_metric if default.best_metric else float("nan")
    print(f"\ndigits, {args.epochs} epochs per run, CPU:\n")
    print("| run | best val acc | wall time | trials (complete / pruned) | vs default (acc) |")
    print("|---|---|---|---|---|")
    print(f"| default config | {100 * default.best_metric:.1f}% | {default_s:.0f} s | 1 | 1.00x |")
    print(f"| random search, median pruning | {100 * search.best_value:.1f}% | {search_s:.0f} s | "
          f"{results['search']['complete']} / {results['search']['pruned']} | {ratio:.2f}x |")
    print(f"\nbest parameters: {search.best_params}")


if __name__ == "__main__":
    main()
