"""``FeatureBuilder``: the bookkeeping V1, V2 and V3 share while they compose ``features``.

A model opens a stage (a row of its paper's table), appends that row's layers with their stride and output
channels, and ``build()`` returns ``features``, the stages and ``feature_info`` derived in one place.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from mobilenetv2.models.base import Stage

MIN_FEATURE_STRIDE = 4


class FeatureBuilder:
    """Collects the layers of ``features`` with the stage each belongs to and the network stride after it."""

    def __init__(self, prefix: str = "features") -> None:
        self.prefix = prefix
        self.layers: list[nn.Module] = []
        self.stages: list[Stage] = []
        self.strides: list[int] = []  # network stride (input size / output size) after each layer
        self.channels: list[int] = []  # output channels of each layer

    def __len__(self) -> int:
        return len(self.layers)

    @property
    def stride(self) -> int:
        """The network stride so far (1 before any layer)."""
        return self.strides[-1] if self.strides else 1

    def stage(self, name: str, operator: str, t: int | None, c: int, n: int, s: int) -> Stage:
        """Open a stage; the layers added next belong to it."""
        self.stages.append(Stage(name, operator, t, c, n, s))
        return self.stages[-1]

    def extend_stage(self) -> Stage:
        """Count one more repeat (``n``) in the open stage, for a table whose rows repeat one by one."""
        self.stages[-1].n += 1
        return self.stages[-1]

    def add(self, layer: nn.Module, stride: int, channels: int) -> int:
        """Append ``layer`` (conv stride ``stride``, ``channels`` outputs) to the open stage; return its index."""
        if not self.stages:
            raise RuntimeError("open a stage before adding layers")
        index = len(self.layers)
        self.layers.append(layer)
        self.stages[-1].indices.append(index)
        self.strides.append(self.stride * stride)
        self.channels.append(channels)
        return index

    def feature_info(self) -> list[dict[str, Any]]:
        """The deepest layer at each network stride >= 4, shallowest first: index, stride, channels, module name."""
        deepest: dict[int, dict[str, Any]] = {}
        for index, (stride, channels) in enumerate(zip(self.strides, self.channels)):
            if stride >= MIN_FEATURE_STRIDE:
                deepest[stride] = {"index": index, "stride": stride, "channels": channels, "name": f"{self.prefix}.{index}"}
        return list(deepest.values())

    def build(self) -> tuple[nn.Sequential, list[Stage], list[dict[str, Any]]]:
        """``features``, ``stages`` and ``feature_info``, as a ``MobileNet`` stores them."""
        return nn.Sequential(*self.layers), self.stages, self.feature_info()
