"""Training and transfer learning: ``train(TrainConfig(...))`` or ``mobilenetv2 train``."""

from mobilenetv2.training.config import PAPER_RECIPE, TrainConfig

__all__ = ["PAPER_RECIPE", "TrainConfig", "TrainResult", "train"]


def __getattr__(name: str):
    if name in ("train", "TrainResult"):  # the loop imports torch: only when a run starts, not for `--help`
        from mobilenetv2.training import loop

        return getattr(loop, name)
    raise AttributeError(name)
