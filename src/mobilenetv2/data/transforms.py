"""Training augmentation presets (torchvision transforms v2) and mixup/cutmix as a seeded batch transform."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torchvision.transforms import InterpolationMode, v2

from mobilenetv2.data.preprocessing import eval_transform
from mobilenetv2.errors import UserError
from mobilenetv2.spec import Preprocessing

_MASK64 = (1 << 64) - 1

AUGMENT_PRESETS = {
    "paper": "RandomResizedCrop (scale 0.08-1) + horizontal flip, as for ImageNet in the paper",
    "light": "mild RandomResizedCrop (scale 0.7-1, aspect 0.8-1.25), no flip (small data, digits, text)",
    "randaugment": "RandomResizedCrop + flip + RandAugment (2 ops, magnitude 9)",
    "trivialaugment": "RandomResizedCrop + flip + TrivialAugmentWide",
    "none": "no augmentation: the evaluation transform (resize + centre crop)",
}


def check_augment(augment: str) -> None:
    if augment not in AUGMENT_PRESETS:
        raise UserError(f"augment must be one of {', '.join(AUGMENT_PRESETS)}, got {augment!r}")


def train_transform(augment: str, pre: Preprocessing) -> Callable:
    """The training pipeline for a preset: PIL/tensor image -> normalised float tensor of ``pre.input_size``."""
    check_augment(augment)
    if augment == "none":
        return eval_transform(pre)
    size, mode = pre.input_size, InterpolationMode(pre.interpolation)
    if augment == "light":
        ops = [v2.RandomResizedCrop(size, scale=(0.7, 1.0), ratio=(0.8, 1.25), interpolation=mode, antialias=True)]
    else:
        ops = [v2.RandomResizedCrop(size, interpolation=mode, antialias=True), v2.RandomHorizontalFlip()]
        if augment == "randaugment":
            ops.append(v2.RandAugment(num_ops=2, magnitude=9, interpolation=mode))
        elif augment == "trivialaugment":
            ops.append(v2.TrivialAugmentWide(interpolation=mode))
    return v2.Compose([
        v2.ToImage(), *ops, v2.ToDtype(torch.float32, scale=True), v2.Normalize(list(pre.mean), list(pre.std)),
    ])


def sample_seed(*keys: int) -> int:
    """A well-mixed 63-bit seed from integer keys such as (seed, epoch, index) (splitmix64-style hashing)."""
    h = 0x9E3779B97F4A7C15
    for k in keys:
        h = ((h ^ (int(k) & _MASK64)) * 0xBF58476D1CE4E5B9) & _MASK64
        h = ((h ^ (h >> 27)) * 0x94D049BB133111EB) & _MASK64
        h ^= h >> 31
    return h >> 1


class BatchMix:
    """Mixup and/or CutMix on a batch: (images, int labels) -> (images, soft targets [N, C]).

    Randomness depends only on (seed, epoch, batch index within the epoch), so a resumed run mixes identically.
    """

    def __init__(self, num_classes: int, mixup: float = 0.0, cutmix: float = 0.0, seed: int = 0):
        if mixup < 0 or cutmix < 0 or mixup == cutmix == 0:
            raise UserError(f"mixup and cutmix are alphas >= 0 with at least one > 0, got mixup={mixup}, cutmix={cutmix}")
        ops = [v2.MixUp(alpha=mixup, num_classes=num_classes)] if mixup > 0 else []
        ops += [v2.CutMix(alpha=cutmix, num_classes=num_classes)] if cutmix > 0 else []
        self.transform = ops[0] if len(ops) == 1 else v2.RandomChoice(ops)
        self.num_classes, self.seed, self.epoch, self.batch_index = num_classes, seed, 0, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch, self.batch_index = epoch, 0

    def __call__(self, images: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        with torch.random.fork_rng(devices=[]):
            torch.default_generator.manual_seed(sample_seed(self.seed, self.epoch, self.batch_index, 0x6D6978))
            self.batch_index += 1
            return self.transform(images, labels)
