"""SSD's loss: anchors matched to boxes at IoU 0.5, smooth-L1 on the box codes of the matched anchors, and
cross-entropy on the matched anchors plus the hardest background ones (3 negatives a positive)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models.detection._utils import SSDMatcher
from torchvision.ops import box_iou

from mobilenetv2.models.detection import AnchorSpecs, anchors_for_count, box_coder

MATCH_IOU = 0.5
NEGATIVES_PER_POSITIVE = 3
MIN_NEGATIVES = 3  # TF's min_negatives_per_image: images without objects still learn what background is


class SSDLoss(nn.Module):
    """``forward(outputs [N, A, 4 + C] (box codes, logits), targets)`` where ``targets.in_window()`` gives each
    input's boxes normalised to it ([N, M, 4]) and labels ([N, M], 0 = none). ``anchor_specs``: the model's own
    anchor shapes when it has them (an imported TF model's), else ours."""

    def __init__(self, label_smoothing: float = 0.0, anchor_specs: AnchorSpecs | None = None) -> None:
        super().__init__()
        self.coder, self.matcher = box_coder(), SSDMatcher(MATCH_IOU)
        self.label_smoothing, self.anchor_specs = label_smoothing, anchor_specs
        self._anchors: dict[tuple[int, str], torch.Tensor] = {}

    def anchors(self, count: int, device: torch.device) -> torch.Tensor:
        key = (count, str(device))
        if key not in self._anchors:
            self._anchors[key] = anchors_for_count(count, specs=self.anchor_specs).to(device)
        return self._anchors[key]

    def forward(self, outputs: torch.Tensor, targets) -> torch.Tensor:
        boxes, labels = targets.in_window()
        return ssd_loss(outputs[..., :4], outputs[..., 4:], boxes.to(outputs.device), labels.to(outputs.device),
                        self.anchors(outputs.shape[1], outputs.device), self.coder, self.matcher, self.label_smoothing)


def match(anchors: torch.Tensor, boxes: torch.Tensor, labels: torch.Tensor,
          matcher: SSDMatcher) -> tuple[torch.Tensor, torch.Tensor]:
    """Per anchor: the index of its box in ``boxes`` (-1: background) and its class (0: background); boxes labelled 0
    (padding, or mostly outside the input) match nothing."""
    kept = torch.nonzero(labels > 0).squeeze(1)
    if len(kept) == 0:
        none = torch.full((len(anchors),), -1, dtype=torch.long, device=anchors.device)
        return none, torch.zeros_like(none)
    matched = matcher(box_iou(boxes[kept], anchors))
    found = matched >= 0
    matched = torch.where(found, kept[matched.clamp(min=0)], matched)
    classes = torch.where(found, labels[matched.clamp(min=0)], torch.zeros_like(matched))
    return matched, classes


def ssd_loss(codes: torch.Tensor, logits: torch.Tensor, boxes: torch.Tensor, labels: torch.Tensor, anchors: torch.Tensor,
             coder, matcher: SSDMatcher, label_smoothing: float = 0.0) -> torch.Tensor:
    """(box loss + classification loss) / matched anchors, as torchvision's ``SSD.compute_loss`` (with TF's minimum
    of negatives per image)."""
    box_loss, class_targets, positives = [], [], 0
    for image_codes, image_boxes, image_labels in zip(codes, boxes, labels):
        matched, classes = match(anchors, image_boxes, image_labels, matcher)
        fg = matched >= 0
        if fg.any():
            target_codes = coder.encode_single(image_boxes[matched[fg]], anchors[fg])
            box_loss.append(F.smooth_l1_loss(image_codes[fg], target_codes, reduction="sum"))
        class_targets.append(classes)
        positives += int(fg.sum())
    class_targets = torch.stack(class_targets)
    ce = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), class_targets.reshape(-1), reduction="none",
                         label_smoothing=label_smoothing).view_as(class_targets)
    fg = class_targets > 0
    wanted = (NEGATIVES_PER_POSITIVE * fg.sum(1, keepdim=True)).clamp(min=MIN_NEGATIVES)
    negative = ce.detach().masked_fill(fg, -float("inf"))
    rank = negative.sort(dim=1, descending=True)[1].sort(dim=1)[1]
    hard = rank < wanted
    total = max(positives, 1)
    box_sum = torch.stack(box_loss).sum() if box_loss else codes.sum() * 0.0
    return (box_sum + ce[fg].sum() + ce[hard].sum()) / total
