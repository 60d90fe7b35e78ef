"""``ClassificationPresenter``: top-k labels written above the image, one CSV row per rank, one table row per image."""

from __future__ import annotations

from typing import Any

from PIL import Image, ImageDraw

from mobilenetv2.tasks.classification.prediction import Prediction
from mobilenetv2.tasks.present import Presenter


class ClassificationPresenter(Presenter):
    def draw(self, image: Image.Image, prediction: Prediction) -> Image.Image:
        """The image with its top classes and probabilities written in a band above it."""
        lines = [f"{label}  {prob:.1%}" for label, prob in zip(prediction.labels, prediction.probabilities)]
        band = 14 * len(lines) + 8
        canvas = Image.new("RGB", (max(image.width, 200), image.height + band), "white")
        canvas.paste(image.convert("RGB"), (0, band))
        draw = ImageDraw.Draw(canvas)
        for row, text in enumerate(lines):
            draw.text((4, 4 + 14 * row), text, fill="black")
        return canvas

    def rows(self, prediction: Prediction) -> list[dict[str, Any]]:
        return [{"image": prediction.source, "rank": rank, "label": label, "index": index, "probability": f"{prob:.6f}"}
                for rank, (label, index, prob) in enumerate(zip(prediction.labels, prediction.indices,
                                                                prediction.probabilities), 1)]

    def summary(self, prediction: Prediction) -> dict[str, Any]:
        return {"image": prediction.source, "label": prediction.label, "probability": f"{prediction.probability:.4f}",
                f"top {len(prediction.labels)}": ", ".join(f"{lab} {prob:.3f}" for lab, prob in
                                                           zip(prediction.labels, prediction.probabilities))}
