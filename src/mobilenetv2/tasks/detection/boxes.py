"""From the model's outputs to detections on torch tensors (training's evaluation, mAP): scores, per-class NMS
(torchvision's), boxes in image pixels, tiles merged. ``decoding`` is the same in numpy, for predict and serve."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torchvision.ops import batched_nms, box_area, clip_boxes_to_image

from mobilenetv2.tasks.detection.decoding import CANDIDATES_PER_CLASS, MAX_DETECTIONS, NMS_IOU, PER_INPUT, SCORE_THRESHOLD

__all__ = ["CANDIDATES_PER_CLASS", "MAX_DETECTIONS", "NMS_IOU", "PER_INPUT", "SCORE_THRESHOLD", "Detections", "decode",
           "merge", "nms", "to_image"]


@dataclass
class Detections:
    """One input's or image's detections: boxes [k, 4] xyxy, scores [k], labels [k] (1..K)."""

    boxes: torch.Tensor
    scores: torch.Tensor
    labels: torch.Tensor

    def __len__(self) -> int:
        return len(self.scores)

    def to_dict(self) -> dict[str, torch.Tensor]:
        return {"boxes": self.boxes, "scores": self.scores, "labels": self.labels}


def decode(outputs: torch.Tensor, score_threshold: float = SCORE_THRESHOLD, nms_iou: float = NMS_IOU,
           max_detections: int = PER_INPUT, score_converter: str = "softmax") -> list[Detections]:
    """Evaluation outputs [N, A, 4 + C] (boxes normalised xyxy, logits; class 0 background) -> each input's
    detections, boxes still normalised to the input, after softmax (or a sigmoid per class: TF's imported models),
    per-class top candidates and NMS."""
    results = []
    for boxes, logits in zip(outputs[..., :4].float(), outputs[..., 4:].float()):
        scores = (logits.sigmoid() if score_converter == "sigmoid" else logits.softmax(-1))[:, 1:]
        boxes = boxes.clamp(0, 1)
        keep_boxes, keep_scores, keep_labels = [boxes[:0]], [scores[:0, 0]], [torch.zeros(0, dtype=torch.long)]
        for cls in torch.nonzero((scores > score_threshold).any(0)).flatten().tolist():  # classes with a candidate
            score = scores[:, cls]
            index = torch.nonzero(score > score_threshold).squeeze(1)
            if len(index) > CANDIDATES_PER_CLASS:
                index = index[score[index].topk(CANDIDATES_PER_CLASS).indices]
            keep_boxes.append(boxes[index])
            keep_scores.append(score[index])
            keep_labels.append(torch.full((len(index),), cls + 1, dtype=torch.long))
        results.append(nms(Detections(torch.cat(keep_boxes), torch.cat(keep_scores), torch.cat(keep_labels)),
                           nms_iou, max_detections))
    return results


def nms(det: Detections, iou: float, max_detections: int) -> Detections:
    """Per-class NMS, then the ``max_detections`` highest scores; boxes of no area are dropped first."""
    valid = box_area(det.boxes) > 0
    det = Detections(det.boxes[valid], det.scores[valid], det.labels[valid])
    keep = batched_nms(det.boxes, det.scores, det.labels, iou)[:max_detections]
    return Detections(det.boxes[keep], det.scores[keep], det.labels[keep])


def to_image(det: Detections, window: torch.Tensor, image_size: tuple[int, int]) -> Detections:
    """Boxes normalised to ``window`` (x0, y0, x1, y1 in image pixels) -> image pixels, clipped to the image."""
    x0, y0, x1, y1 = (float(v) for v in window)
    scale = torch.tensor([x1 - x0, y1 - y0, x1 - x0, y1 - y0])
    boxes = det.boxes * scale + torch.tensor([x0, y0, x0, y0])
    return Detections(clip_boxes_to_image(boxes, tuple(int(s) for s in image_size)), det.scores, det.labels)


def merge(parts: list[Detections], nms_iou: float = NMS_IOU, max_detections: int = MAX_DETECTIONS) -> Detections:
    """One image's detections from its tiles (in image pixels): NMS across the tiles' overlaps."""
    if len(parts) == 1:
        return nms(parts[0], nms_iou, max_detections)
    joined = Detections(torch.cat([p.boxes for p in parts]), torch.cat([p.scores for p in parts]),
                        torch.cat([p.labels for p in parts]))
    return nms(joined, nms_iou, max_detections)
