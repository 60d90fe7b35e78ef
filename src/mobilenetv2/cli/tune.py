"""``mobilenetv2 tune``: hyperparameter search with Optuna over any training option, resumable and shareable."""

from __future__ import annotations

import argparse

EXAMPLES = """examples:
  mobilenetv2 tune --space examples/space.yaml --trials 12 --sampler random --epochs 3 --out runs/tune-digits
  mobilenetv2 tune --space examples/space_grid.yaml --sampler grid --pruner none --out runs/grid
  mobilenetv2 tune --data photos/ --space space.yaml --config base.yaml --max-latency-ms 5 --retrain-best --test photos-test/
  mobilenetv2 tune --widths 0.35 0.5 0.75 1.0 --resolutions 32 48 64 --sampler grid --target tflm \
      --max-arena-kib 64 --objectives accuracy arena --pick --out runs/fit   # which model fits: the front
  mobilenetv2 tune ... --storage postgresql://user:pass@host/db --study shared   # run on several machines at once
  mobilenetv2 train --config runs/tune-digits/best.yaml                        # train the best config found

Re-running the same command resumes the study in --out (finished trials are kept, not repeated)."""

OWN = ("out", "resume", "seed")  # TrainConfig fields that tune sets itself
TARGET_NAMES = ("torch", "litert-fp32", "litert-int8", "tflm", "onnxruntime-int8", "openvino-int8")  # tuning/targets.py


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    from mobilenetv2.training.flags import add_training_flags

    p = sub.add_parser("tune", help="hyperparameter search (Optuna): grid, random or TPE, with pruning",
                       description="Search training options (any `mobilenetv2 train` option, model width and "
                                   "resolution included) over a YAML space. Each trial is a training run in "
                                   "OUT/trials/trial_NNNN; the study lives in OUT/study.db (or --storage), so an "
                                   "interrupted search resumes and several workers can share one study. Writes "
                                   "OUT/trials.md, trials.csv, best.yaml and plots/.",
                       epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    g = p.add_argument_group("search")
    g.add_argument("--space", default=None, help="YAML search space: option: {type: float|int|categorical, low, high, "
                                                 "log, step, choices} (optional with --widths/--resolutions)")
    g.add_argument("--widths", type=float, nargs="+", default=(), metavar="W",
                   help="width multipliers to search (a categorical width_mult), e.g. 0.35 0.5 0.75 1.0")
    g.add_argument("--resolutions", type=int, nargs="+", default=(), metavar="PX",
                   help="input resolutions to search (a categorical input_size), e.g. 96 128 160")
    g.add_argument("--trials", type=int, default=None,
                   help="finished trials the study should reach, counting earlier runs and other workers "
                        "(default 20; grid: the whole grid)")
    g.add_argument("--sampler", choices=["grid", "random", "tpe", "nsga2"], default=None,
                   help="search strategy (default tpe; nsga2 with several --objectives)")
    g.add_argument("--pruner", choices=["median", "halving", "none"], default="median",
                   help="stop poor trials after an epoch: median rule, successive halving, or none (default median)")
    g.add_argument("--timeout", type=float, default=None, help="start no new trial after this many seconds")
    g.add_argument("--objective", choices=["accuracy", "loss"], default="accuracy",
                   help="maximise the best validation accuracy, or minimise the validation loss (default accuracy)")
    g.add_argument("--max-latency-ms", type=float, default=None,
                   help="never train a trial whose model's batch-1 latency at its resolution exceeds this (on --target; "
                        "without one: fp32 eager PyTorch, one CPU thread)")
    d = p.add_argument_group("device target", "measure every candidate as it is deployed, once, before training; "
                             "budgets, the accuracy/cost front (OUT/front.md, front.csv, front.png, front/)")
    d.add_argument("--target", choices=list(TARGET_NAMES), default=None,
                   help="deployment to measure: " + ", ".join(TARGET_NAMES) + " (default: none, today's torch latency)")
    d.add_argument("--max-arena-kib", type=float, default=None, help="TFLM tensor arena budget (SRAM), --target tflm")
    d.add_argument("--max-flash-kib", type=float, default=None, help="TFLM flash budget (the .tflite file), --target tflm")
    d.add_argument("--max-size-mb", type=float, default=None, help="budget on the deployed file's size")
    d.add_argument("--objectives", nargs="+", default=(), metavar="NAME",
                   help="accuracy and costs for a multi-objective search (NSGA-II): accuracy latency|arena|flash|size|macs")
    d.add_argument("--threads", type=int, default=1, help="threads of the target's runtime when timing (default 1)")
    d.add_argument("--pick", action="store_true",
                   help="the most accurate model within the budgets is the best (and what --retrain-best retrains)")
    d.add_argument("--pretrained-map", metavar="YAML",
                   help="width -> checkpoint to start that width from (e.g. '1.0: mnv2_1.0.safetensors'); "
                        "other widths train from the base config's start (scratch by default)")
    g.add_argument("--study", default="mobilenetv2", help="study name in the storage (default mobilenetv2)")
    g.add_argument("--storage", default=None, help="Optuna storage URL, e.g. postgresql://... or sqlite:///path.db "
                                                   "(default sqlite:///OUT/study.db)")
    g.add_argument("--out", default="runs/tune", help="results folder (default runs/tune)")
    g.add_argument("--seed", type=int, default=None, help="seed of the sampler and of every trial's training (default 0)")
    g.add_argument("--no-plots", action="store_true", help="skip the PNG plots (they take a few seconds)")
    g.add_argument("--retrain-best", action="store_true",
                   help="afterwards, train the best config again from scratch on train + val (no pruning) into "
                        "OUT/best; its final model is OUT/best/last.safetensors")
    g.add_argument("--test", metavar="DATA", help="held-out data (never seen by the search) to evaluate the retrained "
                                                  "model on, with --retrain-best: a class folder, a CSV, ...")
    t = p.add_argument_group("base training config", "the values every trial starts from: --config YAML, then any "
                             "`mobilenetv2 train` flag (e.g. --data photos/ --epochs 3 --limit-batches 20; "
                             "see `mobilenetv2 train --help`)")
    t.add_argument("--config", help="YAML of training options (as for `mobilenetv2 train --config`)")
    add_training_flags(t, skip=OWN, show_help=False)
    return p


def base_config(args: argparse.Namespace):
    """The training options every trial starts from: --config YAML overridden by the flags given."""
    from mobilenetv2.training.config import TrainConfig, read_yaml
    from mobilenetv2.training.flags import given_training_flags

    given = given_training_flags(args, skip=OWN)
    values = {**(read_yaml(args.config) if args.config else {}), **given, "progress": given.get("progress", False)}
    if args.seed is not None:
        values["seed"] = args.seed
    return TrainConfig.from_dict(values)


def run(args: argparse.Namespace) -> int:
    from mobilenetv2.tuning import TuneConfig, tune

    base = base_config(args)
    cfg = TuneConfig(space=args.space, trials=args.trials, sampler=args.sampler, pruner=args.pruner, timeout=args.timeout,
                     objective=args.objective, max_latency_ms=args.max_latency_ms, study=args.study,
                     storage=args.storage, out=args.out, seed=args.seed or 0, retrain_best=args.retrain_best,
                     test=args.test, plots=not args.no_plots, target=args.target, objectives=tuple(args.objectives),
                     max_arena_kib=args.max_arena_kib, max_flash_kib=args.max_flash_kib, max_size_mb=args.max_size_mb,
                     threads=args.threads, widths=tuple(args.widths), resolutions=tuple(args.resolutions),
                     pretrained_map=args.pretrained_map, pick=args.pick)
    tune(cfg, base)
    return 0
