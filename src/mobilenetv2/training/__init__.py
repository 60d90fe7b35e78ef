"""Training and transfer learning: ``train(TrainConfig(...))`` or ``mobilenetv2 train``."""

from mobilenetv2.training.config import PAPER_RECIPE, TrainConfig
from mobilenetv2.training.loop import TrainResult, train

__all__ = ["PAPER_RECIPE", "TrainConfig", "TrainResult", "train"]
