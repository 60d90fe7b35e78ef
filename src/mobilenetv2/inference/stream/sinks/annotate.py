"""Drawing a prediction on a video frame, one function per task: a classifier's top label, a segmenter's mask
overlay (the segmentation presenter's picture), a detector's boxes with their track IDs (supervision's annotators)."""

from __future__ import annotations

from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from mobilenetv2.inference.stream.frames import Result


def top_label(frame: np.ndarray, result: Result) -> np.ndarray:
    """The top label and its probability in a band at the top left."""
    picture = Image.fromarray(frame)
    size = max(12, frame.shape[0] // 30)
    text = f"{result.prediction.label} {result.prediction.probability:.0%}"
    draw = ImageDraw.Draw(picture)
    font = ImageFont.load_default(size=size)
    box = draw.textbbox((size // 2, size // 2), text, font=font)
    draw.rectangle((box[0] - 4, box[1] - 4, box[2] + 4, box[3] + 4), fill=(0, 0, 0))
    draw.text((size // 2, size // 2), text, fill=(255, 255, 255), font=font)
    return np.asarray(picture)


def mask_overlay(frame: np.ndarray, result: Result) -> np.ndarray:
    from mobilenetv2.tasks.segmentation.present import SegmentationPresenter

    return np.asarray(SegmentationPresenter().draw(Image.fromarray(frame), result.prediction))


class TrackedBoxes:
    """Boxes and "#ID label score" labels; supervision's annotators (OpenCV when it is installed)."""

    def __init__(self) -> None:
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            import supervision as sv
        self.sv = sv
        self.boxes = sv.BoxAnnotator(thickness=2)
        self.labels = sv.LabelAnnotator(text_scale=0.5, text_padding=4)

    def __call__(self, frame: np.ndarray, result: Result) -> np.ndarray:
        p = result.prediction
        ids = result.extra.get("track_ids") or [None] * len(p.boxes)
        detections = self.sv.Detections(xyxy=np.asarray(p.boxes, dtype=np.float32).reshape(-1, 4),
                                        confidence=np.asarray(p.scores, dtype=np.float32),
                                        class_id=np.asarray(p.labels, dtype=int))
        labels = [f"{'' if t is None else f'#{t} '}{p.class_names[int(c)]} {s:.2f}" for t, c, s in zip(ids, p.labels, p.scores)]
        canvas = frame.copy()
        canvas = self.boxes.annotate(canvas, detections)
        return self.labels.annotate(canvas, detections, labels=labels)


def annotator(task_name: str) -> Any:
    """``(frame HWC uint8, result) -> annotated frame`` for a task."""
    return {"classification": lambda: top_label, "segmentation": lambda: mask_overlay,
            "detection": TrackedBoxes}[task_name]()
