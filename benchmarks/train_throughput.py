"""Training throughput: our training step (``Trainer.train_step``) vs a plain loop over torchvision's mobilenet_v2.

Both train MobileNetV2 1.0 (10 classes) with SGD + momentum on the same random batch (batch 32, channels_last),
timed interleaved in one run; prints images/s and the ratio ours / plain per resolution.

    python benchmarks/train_throughput.py [--quick] [--resolutions 224 128] [--batch-size 32] [--rounds 5]
"""

from __future__ import annotations

import argparse

import torch
import torchvision
from torch import nn

from mobilenetv2.models import create_model
from mobilenetv2.reporting import format_table
from mobilenetv2.timing import time_interleaved
from mobilenetv2.training import TrainConfig
from mobilenetv2.training.loop import Trainer
from mobilenetv2.training.optim import build_optimizer, build_scheduler


def our_step(images: torch.Tensor, labels: torch.Tensor):
    """A Trainer holding only what ``train_step`` uses (the data-free parts of ``Trainer.__init__``)."""
    cfg = TrainConfig(channels_last=True, lr=0.01, warmup_epochs=0, device="cpu", progress=False)
    trainer = Trainer.__new__(Trainer)
    trainer.cfg, trainer.device, trainer.ema = cfg, torch.device("cpu"), None
    trainer.model = trainer.ddp_model = create_model("mobilenet_v2", num_classes=10).to(memory_format=torch.channels_last)
    trainer.model.train()
    trainer.optimizer = build_optimizer(trainer.model, cfg)
    trainer.scheduler = build_scheduler(trainer.optimizer, 10**6, cfg)
    trainer.scaler = torch.amp.GradScaler("cuda", enabled=False)
    trainer.criterion = nn.CrossEntropyLoss()
    return lambda: trainer.train_step(images, labels)


def plain_step(images: torch.Tensor, labels: torch.Tensor):
    """The loop of torchvision's reference scripts, reduced to its core."""
    model = torchvision.models.mobilenet_v2(num_classes=10).to(memory_format=torch.channels_last).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, nesterov=True, weight_decay=4e-5)
    criterion = nn.CrossEntropyLoss()
    x = images.contiguous(memory_format=torch.channels_last)

    def step():
        loss = criterion(model(x), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return loss.item()

    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="128 px only, 3 rounds (a fast check)")
    parser.add_argument("--resolutions", type=int, nargs="+", default=[224, 128])
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    resolutions, rounds = ([128], 3) if args.quick else (args.resolutions, args.rounds)
    rows = []
    for res in resolutions:
        torch.manual_seed(0)
        images, labels = torch.randn(args.batch_size, 3, res, res), torch.randint(0, 10, (args.batch_size,))
        stats = time_interleaved({"ours": our_step(images, labels), "plain": plain_step(images, labels)},
                                 rounds=rounds, warmup=1)
        ips = {name: args.batch_size * 1e3 / s.median_ms for name, s in stats.items()}
        rows.append([res, args.batch_size, f"{ips['ours']:.1f}", f"{ips['plain']:.1f}", f"{ips['ours'] / ips['plain']:.3f}",
                     f"{max(s.spread for s in stats.values()):.2f}"])
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU, channels_last, SGD, rounds {rounds}\n")
    print(format_table(["resolution", "batch", "ours img/s", "plain torchvision img/s", "ratio ours/plain", "max spread"],
                       rows))


if __name__ == "__main__":
    main()
