"""``mobilenetv2 compare``: candidate models side by side (size, multiply-adds, latency, memory, accuracy)."""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("compare", help="compare models: parameters, size, MACs, latency, throughput, memory, accuracy",
                       description="Measure candidate models side by side: parameters, size on disk, multiply-adds, "
                                   "batch-1 latency (median, p90), throughput, peak memory and, with --data and "
                                   "--epochs (or --checkpoints), accuracy after the same training budget. Writes "
                                   "Markdown/CSV/JSON tables and an accuracy-or-MACs vs latency plot with the Pareto front.")
    p.add_argument("--models", nargs="+", default=None, metavar="NAME",
                   help="our model names or torchvision classifiers (random weights), NAME@RES for another resolution "
                        "(default: MobileNetV2 0.5/1.0/1.4, 1.0@160/128, V1, V3 small/large, resnet18, shufflenet_v2_x1_0, "
                        "mnasnet1_0, efficientnet_b0, squeezenet1_1)")
    p.add_argument("--quick", action="store_true", help="a shorter default list and fewer repeats")
    p.add_argument("--checkpoints", nargs="+", default=None, metavar="PATH", help="trained checkpoints to include")
    p.add_argument("--resolution", type=int, default=224, help="input resolution (default 224)")
    p.add_argument("--threads", type=int, default=None, help="CPU threads for the timings (default: PyTorch's)")
    p.add_argument("--repeats", type=int, default=None, help="interleaved timing rounds (default 10, 5 with --quick)")
    p.add_argument("--batch-size", type=int, default=32, help="batch size of the throughput measurement (default 32)")
    p.add_argument("--no-memory", action="store_true", help="skip the peak-memory measurement (one process per model)")
    p.add_argument("--data", default=None, help="dataset for accuracy (with --epochs, or to evaluate --checkpoints)")
    p.add_argument("--epochs", type=int, default=None, help="fine-tune every model for N epochs on --data")
    p.add_argument("--train-config", default=None, help="YAML of training options shared by every model (see `train`)")
    p.add_argument("--split", choices=["val", "train", "all"], default="val", help="split for evaluating --checkpoints")
    p.add_argument("--out", default=None, help="write compare.md, compare.csv, compare.json and compare.png here")
    return p


def run(args: argparse.Namespace) -> int:
    import sys

    from mobilenetv2.benchmarking.compare import QUICK_MODELS, compare, to_markdown, write_outputs

    train_config = None
    if args.train_config:
        from mobilenetv2.training import TrainConfig

        train_config = TrainConfig.from_yaml(args.train_config)
    models = args.models if args.models is not None or args.checkpoints else (QUICK_MODELS if args.quick else None)
    repeats = args.repeats or (5 if args.quick else 10)
    rows, info = compare(models, checkpoints=args.checkpoints, resolution=args.resolution, threads=args.threads,
                         repeats=repeats, batch_size=args.batch_size, memory=not args.no_memory, data=args.data,
                         epochs=args.epochs, split=args.split, train_config=train_config,
                         runs_dir=f"{args.out}/runs" if args.out else None,
                         say=lambda msg: print(f"compare: {msg}", file=sys.stderr, flush=True))
    print(to_markdown(rows, info))
    if args.out:
        write_outputs(rows, info, args.out)
        print(f"written to {args.out}/ (compare.md, compare.csv, compare.json, compare.png)")
    return 0
