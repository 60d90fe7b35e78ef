"""From the model's outputs to detections in numpy, without torch (what ``predict`` and ``serve`` run): scores,
per-class NMS, boxes in image pixels, tiles merged. ``boxes`` keeps torchvision's twin for training's evaluation."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mobilenetv2.tasks.scores import sigmoid, softmax

SCORE_THRESHOLD = 0.01  # keep low-scoring boxes for mAP (COCO ranks them); `predict` uses a higher threshold
NMS_IOU = 0.6  # TF's ssdlite config
CANDIDATES_PER_CLASS = 300
PER_INPUT = 100  # TF's max detections per input (an image or a tile)
MAX_DETECTIONS = 300  # per image once tiles are merged (dense scenes: hundreds of tree crowns)


@dataclass
class BoxArrays:
    """One input's or image's detections as arrays: boxes [k, 4] xyxy float32, scores [k], labels [k] (1..K)."""

    boxes: np.ndarray
    scores: np.ndarray
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.scores)

    def select(self, index: np.ndarray) -> BoxArrays:
        return BoxArrays(self.boxes[index], self.scores[index], self.labels[index])


def decode(outputs: np.ndarray, score_threshold: float = SCORE_THRESHOLD, nms_iou: float = NMS_IOU,
           max_detections: int = PER_INPUT, score_converter: str = "softmax") -> list[BoxArrays]:
    """Evaluation outputs [N, A, 4 + C] (boxes normalised xyxy, logits; class 0 background) -> each input's
    detections, boxes still normalised to the input, after softmax (or a sigmoid per class: TF's imported models),
    per-class top candidates and NMS."""
    outputs = np.asarray(outputs, dtype=np.float32)
    results = []
    for row in outputs:
        scores = (sigmoid(row[:, 4:]) if score_converter == "sigmoid" else softmax(row[:, 4:]))[:, 1:]
        boxes = np.clip(row[:, :4], 0, 1)
        found = [BoxArrays(boxes[:0], scores[:0, 0], np.zeros(0, np.int64))]
        for cls in np.flatnonzero((scores > score_threshold).any(0)):  # classes with a candidate
            score = scores[:, cls]
            index = np.flatnonzero(score > score_threshold)
            if len(index) > CANDIDATES_PER_CLASS:
                index = index[np.argsort(-score[index], kind="stable")[:CANDIDATES_PER_CLASS]]
            found.append(BoxArrays(boxes[index], score[index], np.full(len(index), cls + 1, np.int64)))
        results.append(nms(join(found), nms_iou, max_detections))
    return results


def join(parts: list[BoxArrays]) -> BoxArrays:
    return BoxArrays(np.concatenate([p.boxes for p in parts]), np.concatenate([p.scores for p in parts]),
                     np.concatenate([p.labels for p in parts]))


def box_area(boxes: np.ndarray) -> np.ndarray:
    return (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])


def nms(det: BoxArrays, iou: float, max_detections: int) -> BoxArrays:
    """Per-class NMS (torchvision's ``batched_nms``: classes kept apart by offsetting their boxes), then the
    ``max_detections`` highest scores; boxes of no area are dropped first."""
    det = det.select(box_area(det.boxes) > 0)
    if not len(det):
        return det
    boxes = det.boxes + (det.labels.astype(np.float32) * (det.boxes.max() + 1))[:, None]
    areas, order, keep = box_area(boxes), np.argsort(-det.scores, kind="stable"), []
    while order.size and len(keep) < max_detections:
        first, rest = order[0], order[1:]
        keep.append(first)
        low, high = np.maximum(boxes[first, :2], boxes[rest, :2]), np.minimum(boxes[first, 2:], boxes[rest, 2:])
        inter = np.prod(np.clip(high - low, 0, None), axis=1)
        order = rest[inter / (areas[first] + areas[rest] - inter) <= iou]
    return det.select(np.asarray(keep, np.int64))


def to_image(det: BoxArrays, window: tuple[int, int, int, int], image_size: tuple[int, int]) -> BoxArrays:
    """Boxes normalised to ``window`` (x0, y0, x1, y1 in image pixels) -> image pixels, clipped to the image
    (``image_size``: height, width)."""
    x0, y0, x1, y1 = (float(v) for v in window)
    boxes = det.boxes * np.float32([x1 - x0, y1 - y0, x1 - x0, y1 - y0]) + np.float32([x0, y0, x0, y0])
    height, width = image_size
    return BoxArrays(np.clip(boxes, 0, np.float32([width, height, width, height])), det.scores, det.labels)


def merge(parts: list[BoxArrays], nms_iou: float = NMS_IOU, max_detections: int = MAX_DETECTIONS) -> BoxArrays:
    """One image's detections from its tiles (in image pixels): NMS across the tiles' overlaps."""
    return nms(parts[0] if len(parts) == 1 else join(parts), nms_iou, max_detections)
