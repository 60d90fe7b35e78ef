"""Training-loader throughput: ours (`build_data`) vs a plain torchvision `ImageFolder` + `DataLoader`, in one run.

Both decode the same real photos (../shared/data/hymenoptera_data/train, 245 JPEGs up to 2592x1944) with the same
"paper" augmentation at 224 px, batch 32, the same number of workers, in interleaved rounds. Ours adds the up-front
check of every file, RGB conversion of any mode, bad-file dropping and per-(seed, epoch, image) seeding; the ratio
shows what that costs per epoch. Also times the one-off set-up (ours scans every file). Prints Markdown.

    .venv/bin/python benchmarks/data_loading.py --workers 2 --rounds 5
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader
from torchvision.datasets import ImageFolder

from mobilenetv2.data import DataConfig, build_data, train_transform
from mobilenetv2.timing import time_interleaved

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "hymenoptera_data"


def reference_loader(root: Path, cfg: DataConfig) -> DataLoader:
    dataset = ImageFolder(str(root / "train"), transform=train_transform(cfg.augment, cfg.preprocessing()))
    return DataLoader(dataset, batch_size=cfg.batch_size, shuffle=True, num_workers=cfg.workers, drop_last=True)


def one_epoch(loader) -> int:
    return sum(len(labels) for _, labels in loader)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(DATA))
    parser.add_argument("--workers", type=int, default=min(4, os.cpu_count() or 1))
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--input-size", type=int, default=224)
    args = parser.parse_args()
    torch.set_num_threads(1)
    root = Path(args.data)
    cfg = DataConfig(data=str(root), input_size=args.input_size, augment="paper", batch_size=32, workers=args.workers)

    setup = time_interleaved({"torchvision": lambda: reference_loader(root, cfg), "ours": lambda: build_data(cfg)},
                             rounds=args.rounds, warmup=1)
    loaders = {"torchvision": reference_loader(root, cfg), "ours": build_data(cfg).train_loader}
    start = time.perf_counter()
    images = one_epoch(loaders["ours"])
    print(f"(one untimed epoch of ours: {images} images in {time.perf_counter() - start:.1f} s)")
    epoch = time_interleaved({name: (lambda ld=ld: one_epoch(ld)) for name, ld in loaders.items()},
                             rounds=args.rounds, warmup=1)
    ref, ours = epoch["torchvision"].median_ms, epoch["ours"].median_ms
    print(f"hymenoptera train ({images} images/epoch with drop_last), {args.input_size} px, \"paper\" augmentation, "
          f"batch 32, {args.workers} workers, {args.rounds} interleaved rounds, medians; torch {torch.__version__}.\n")
    print("| | torchvision ImageFolder | ours (`build_data`) | ratio ours / torchvision |")
    print("|---|---|---|---|")
    print(f"| one epoch | {ref / 1e3:.2f} s ({images / ref * 1e3:.0f} img/s) | {ours / 1e3:.2f} s "
          f"({images / ours * 1e3:.0f} img/s) | {ours / ref:.2f} |")
    s_ref, s_ours = setup["torchvision"].median_ms, setup["ours"].median_ms
    files = len(loaders["ours"].dataset) + len(build_data(cfg).val_loader.dataset)
    print(f"| set-up, once per run (ours checks all {files} train + val files) | {s_ref:.0f} ms | {s_ours:.0f} ms "
          f"({s_ours / files:.1f} ms a file) | {s_ours / s_ref:.0f} |")
    print(f"\nspread (p90 - min) / median: epoch {max(epoch[n].spread for n in epoch):.2f}, "
          f"set-up {max(setup[n].spread for n in setup):.2f}")


if __name__ == "__main__":
    main()
