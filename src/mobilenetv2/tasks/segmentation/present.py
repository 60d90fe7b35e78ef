"""``SegmentationPresenter``: the class-index mask (PASCAL palette) written for every image, the overlay drawn, one CSV
row per class present, and the mask as a base64 PNG in the server's answer."""

from __future__ import annotations

from typing import Any

from PIL import Image

from mobilenetv2.tasks.present import Presenter
from mobilenetv2.tasks.segmentation.palette import colorize, overlay
from mobilenetv2.tasks.segmentation.prediction import SegmentationPrediction


class SegmentationPresenter(Presenter):
    def draw(self, image: Image.Image, prediction: SegmentationPrediction) -> Image.Image:
        return overlay(image.convert("RGB"), prediction.mask)

    def pictures(self, image: Image.Image, prediction: SegmentationPrediction) -> dict[str, Image.Image]:
        """STEM_overlay.png (the mask itself is one of ``files``)."""
        return {"_overlay": self.draw(image, prediction)}

    def files(self, prediction: SegmentationPrediction) -> dict[str, Image.Image]:
        """STEM_mask.png: the class indices as pixel values, in the PASCAL palette."""
        return {"_mask": colorize(prediction.mask)}

    def answer(self, prediction: SegmentationPrediction) -> dict[str, Any]:
        """The fractions, the class names, and the mask as a base64 PNG in the PASCAL palette (pixel values = class)."""
        import base64
        import io

        buffer = io.BytesIO()
        colorize(prediction.mask).save(buffer, format="PNG")
        return {**super().answer(prediction), "class_names": prediction.class_names,
                "mask_png": base64.b64encode(buffer.getvalue()).decode("ascii")}

    def rows(self, prediction: SegmentationPrediction) -> list[dict[str, Any]]:
        return [{"image": prediction.source, "class": name, "index": prediction.class_names.index(name),
                 "fraction": f"{share:.6f}"} for name, share in prediction.fractions.items()]

    def summary(self, prediction: SegmentationPrediction) -> dict[str, Any]:
        shown = ", ".join(f"{name} {share:.1%}" for name, share in prediction.fractions.items())
        return {"image": prediction.source, "size": f"{prediction.mask.shape[1]}x{prediction.mask.shape[0]}",
                "main class": prediction.label, "pixels by class": shown}
