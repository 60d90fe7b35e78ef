"""``mobilenetv2 train``: train or fine-tune on the built-in digits, an image folder, a CSV or a torchvision dataset."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from mobilenetv2.errors import UserError
from mobilenetv2.training.config import TrainConfig, read_yaml
from mobilenetv2.training.flags import add_training_flags, given_training_flags

EXAMPLES = """examples:
  mobilenetv2 train                                   # MobileNetV2 on the built-in digits, < 3 min on a laptop CPU
  mobilenetv2 train --data photos/ --pretrained torchvision --head-epochs 2 --backbone-lr-mult 0.1
  mobilenetv2 train --data CIFAR10 --recipe paper --ema 0.9999 --amp bf16 --channels-last
  mobilenetv2 train --config run.yaml --lr 0.05       # flags override the YAML
  mobilenetv2 train --resume runs/digits-20260101-120000
  torchrun --nproc-per-node 2 -m mobilenetv2 train --data photos/   # one process per device (DDP)
"""


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("train", help="train or fine-tune a model (default: MobileNetV2 on the built-in digits)",
                       description="Train or fine-tune a classifier. Every option is also a key of a --config YAML "
                                   "file; flags given explicitly override it. The run folder gets best.safetensors, "
                                   "last.safetensors, metrics.csv, tb/, curves.png, eval/ and config.yaml.",
                       epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", help="YAML file of options (keys as below, with underscores)")
    add_training_flags(p)
    return p


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """YAML (``--config``, or the run's config.yaml with ``--resume``) overridden by the flags given."""
    given = given_training_flags(args)
    base: dict[str, Any] = {}
    if args.config:
        base = read_yaml(args.config)
    elif given.get("resume"):
        saved = Path(given["resume"]) / "config.yaml"
        if not saved.is_file():
            raise UserError(f"cannot resume: {given['resume']} has no config.yaml (is it a `mobilenetv2 train` run folder?)")
        base = read_yaml(saved)
    return TrainConfig.from_dict({**base, **given})


def run(args: argparse.Namespace) -> int:
    from mobilenetv2.training import train

    train(config_from_args(args))
    return 0
