"""What every model of the family shares: input checks, pooling head, stages and backbone features."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn

from mobilenetv2.models.checks import check_num_classes
from mobilenetv2.models.layers import check_input


@dataclass
class Stage:
    """One row of the paper's architecture table: which ``features`` indices it covers."""

    name: str
    operator: str
    t: int | None
    c: int
    n: int
    s: int
    indices: list[int] = field(default_factory=list)


class MobileNet(nn.Module):
    """Base class: ``features`` (an nn.Sequential), global average pooling and ``classifier``.

    Subclasses fill ``features``, ``stages`` and ``feature_info`` with a ``FeatureBuilder``, then ``classifier``
    and ``arch``. ``feature_info`` lists the deepest layer at each stride >= 4: its ``features`` index, stride,
    channels and module name (``"features.13"``), for backbone use.
    """

    in_chans: int
    num_classes: int
    num_features: int
    stages: list[Stage]
    feature_info: list[dict[str, Any]]
    arch: dict[str, Any]
    features: nn.Sequential
    classifier: nn.Sequential

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The last feature map, before pooling."""
        check_input(x, self.in_chans)
        return self.features(x)

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        """Pool a feature map and classify it."""
        return self.classifier(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def forward_pyramid(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Feature maps at strides 4, 8, 16 and 32 (see ``feature_info``) for detection/segmentation heads."""
        check_input(x, self.in_chans)
        wanted = {info["index"] for info in self.feature_info}
        outputs = []
        for index, layer in enumerate(self.features):
            x = layer(x)
            if index in wanted:
                outputs.append(x)
            if len(outputs) == len(wanted):
                break
        return outputs

    def reset_classifier(self, num_classes: int) -> None:
        """Replace the last linear layer with a new one for ``num_classes`` classes."""
        check_num_classes(num_classes)
        last = self.classifier[-1]
        self.classifier[-1] = nn.Linear(last.in_features, num_classes)
        nn.init.normal_(self.classifier[-1].weight, 0, 0.01)
        nn.init.zeros_(self.classifier[-1].bias)
        self.num_classes = num_classes
        self.arch["args"]["num_classes"] = num_classes

    def stage_modules(self) -> dict[str, nn.Module]:
        """Stage name -> module, in order from input to output (``classifier`` last)."""
        named = {s.name: nn.Sequential(*(self.features[i] for i in s.indices)) for s in self.stages if s.indices}
        named["classifier"] = self.classifier
        return named


def init_weights(model: nn.Module) -> None:
    """torchvision's initialisation: Kaiming-normal convs, unit BN, small-normal linear layers."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0, 0.01)
            nn.init.zeros_(m.bias)


def stage_dict(stage: Stage) -> dict[str, Any]:
    return asdict(stage)
