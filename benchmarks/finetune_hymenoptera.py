"""Transfer learning on real photos: the converted TFLite ImageNet weights vs training from scratch, same budget.

Converts ``../shared/data/tflite/mobilenet_v2_1.0_224_quant.tflite`` (``mobilenetv2 convert``, BatchNorm statistics
calibrated on the training photos so that unfreezing works with BatchNorm in training mode), then runs three
``mobilenetv2 train`` commands on ``../shared/data/hymenoptera_data`` (245 train / 153 val photos of ants and bees):
head only (frozen backbone), staged unfreezing (head first, then everything at a lower backbone lr) and from
scratch. Prints each exact command, then a Markdown table of best val accuracy and wall time.

    python benchmarks/finetune_hymenoptera.py [--epochs 5] [--input-size 224] [--out runs/finetune-hymenoptera]
"""

from __future__ import annotations

import argparse
import json
import shlex
import time
from pathlib import Path

from mobilenetv2.cli import build_parser, main
from mobilenetv2.cli.train import config_from_args
from mobilenetv2.training import train

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def runs(checkpoint: Path, data: Path, out: Path, epochs: int, input_size: int) -> dict[str, list[str]]:
    """Run name -> the flags of its ``mobilenetv2 train`` command."""
    common = ["--data", str(data), "--epochs", str(epochs), "--input-size", str(input_size), "--batch-size", "32",
              "--optimizer", "sgd", "--warmup-epochs", "0", "--seed", "0", "--no-progress"]
    head = round(epochs / 2) or 1
    return {
        "pretrained, head only": [*common, "--pretrained", str(checkpoint), "--freeze", "all", "--lr", "0.002",
                                  "--out", str(out / "head-only")],
        "pretrained, staged unfreezing": [*common, "--pretrained", str(checkpoint), "--head-epochs", str(head), "--lr", "0.002",
                                          "--backbone-lr-mult", "0.1", "--out", str(out / "staged")],
        "from scratch": [*common, "--lr", "0.05", "--out", str(out / "scratch")],
    }


def main_benchmark() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=5, help="epochs per run, the same budget for all (default 5)")
    parser.add_argument("--input-size", type=int, default=224, help="training and evaluation resolution (default 224)")
    parser.add_argument("--out", type=Path, default=Path("runs/finetune-hymenoptera"), help="where runs are written")
    parser.add_argument("--only", help="run only the runs whose name contains this text (e.g. 'head')")
    args = parser.parse_args()
    tflite, data = DATA / "tflite", DATA / "hymenoptera_data"
    if not (tflite / "mobilenet_v2_1.0_224_quant.tflite").is_file() or not data.is_dir():
        raise SystemExit(f"needs {tflite} and {data} (the shared real data beside the checkout)")

    checkpoint = args.out / "mobilenet_v2_1.0_224_imagenet.safetensors"
    convert = ["convert", str(tflite / "mobilenet_v2_1.0_224_quant.tflite"), str(checkpoint),
               "--labels", str(tflite / "imagenet_labels.txt"), "--drop-background", "--calibrate", str(data / "train")]
    print("$ mobilenetv2 " + shlex.join(convert))
    if main(convert) != 0:
        raise SystemExit("conversion failed")

    results = []
    for name, flags in runs(checkpoint, data, args.out, args.epochs, args.input_size).items():
        if args.only and args.only not in name:
            continue
        print(f"\n$ mobilenetv2 train {shlex.join(flags)}", flush=True)
        cfg = config_from_args(build_parser().parse_args(["train", *flags]))
        start = time.perf_counter()
        result = train(cfg)
        seconds = time.perf_counter() - start
        results.append({"run": name, "val_acc": result.best_metric, "seconds": seconds, "epochs": args.epochs,
                        "final_val_acc": result.history[-1]["val_acc"], "command": "mobilenetv2 train " + shlex.join(flags)})
        print(f"{name}: best val accuracy {100 * result.best_metric:.1f}% in {seconds:.0f} s", flush=True)

    (args.out / "results.json").write_text(json.dumps(results, indent=2))
    scratch = next((r for r in results if r["run"] == "from scratch"), None)
    print(f"\nhymenoptera_data, {args.epochs} epochs at {args.input_size}px each, CPU:\n")
    print("| run | best val acc | final val acc | wall time | vs scratch (acc) |")
    print("|---|---|---|---|---|")
    for r in results:
        ratio = f"{r['val_acc'] / scratch['val_acc']:.2f}x" if scratch and scratch["val_acc"] else "-"
        print(f"| {r['run']} | {100 * r['val_acc']:.1f}% | {100 * r['final_val_acc']:.1f}% | {r['seconds']:.0f} s | {ratio} |")


if __name__ == "__main__":
    main_benchmark()
