"""``Presenter``: how a task's predictions are shown: drawn on their image, as CSV rows and a table row, as the HTTP
server's JSON answer, and the files ``predict --out`` writes. One per task, in ``tasks/<task>/present.py`` beside its
predictions; each predictor holds its task's (``Predictor.presenter``)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from PIL import Image


class Presenter(ABC):
    """A task's predictions for people and programs; the ``Task`` itself keeps data, model, loss and metrics."""

    @abstractmethod
    def draw(self, image: Image.Image, prediction: Any) -> Image.Image:
        """A picture of ``prediction`` drawn on ``image``."""

    def pictures(self, image: Image.Image, prediction: Any) -> dict[str, Image.Image]:
        """The pictures ``predict --draw`` writes for one image, by file-name suffix (STEM.png: ``draw``'s)."""
        return {"": self.draw(image, prediction)}

    def files(self, prediction: Any) -> dict[str, Image.Image]:
        """What ``predict --out`` writes for every image, by file-name suffix, without the image itself (default none)."""
        return {}

    def answer(self, prediction: Any) -> dict[str, Any]:
        """The JSON answer of the HTTP server for one prediction (an upload has no file name: none is given)."""
        return {k: v for k, v in prediction.to_dict().items() if k not in ("source", "image")}

    @abstractmethod
    def rows(self, prediction: Any) -> list[dict[str, Any]]:
        """The CSV rows of one prediction (column -> value)."""

    @abstractmethod
    def summary(self, prediction: Any) -> dict[str, Any]:
        """One table row summing up one prediction (column -> value)."""
