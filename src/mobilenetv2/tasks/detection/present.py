"""``DetectionPresenter``: boxes drawn in a colour per class, one CSV row per box, one table row per image."""

from __future__ import annotations

from typing import Any

from PIL import Image

from mobilenetv2.tasks.detection.prediction import DetectionPrediction
from mobilenetv2.tasks.present import Presenter


class DetectionPresenter(Presenter):
    def draw(self, image: Image.Image, prediction: DetectionPrediction) -> Image.Image:
        import torch

        from mobilenetv2.tasks.detection.boxes import Detections
        from mobilenetv2.tasks.detection.draw import draw_detections

        det = Detections(torch.from_numpy(prediction.boxes), torch.from_numpy(prediction.scores),
                         torch.from_numpy(prediction.labels))
        return draw_detections(image, det, prediction.class_names, labels=len(det) <= 60)

    def rows(self, prediction: DetectionPrediction) -> list[dict[str, Any]]:
        return [{"image": prediction.source, "label": d["label"], "score": f"{d['score']:.4f}",
                 **dict(zip(("xmin", "ymin", "xmax", "ymax"), (f"{v:.1f}" for v in d["box"])))}
                for d in prediction.detections()]

    def summary(self, prediction: DetectionPrediction) -> dict[str, Any]:
        found = ", ".join(f"{name} x{count}" for name, count in prediction.counts.items()) or "nothing"
        top = f"{prediction.class_names[int(prediction.labels[0])]} {prediction.scores[0]:.2f}" if len(prediction.scores) else "-"
        return {"image": prediction.source, "size": f"{prediction.width}x{prediction.height}", "tiles": prediction.tiles,
                "detections": len(prediction.scores), "by class": found, "best": top}
