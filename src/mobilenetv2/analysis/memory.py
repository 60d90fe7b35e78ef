"""The paper's memory accounting (section 5.1, "Memory efficient inference", and Table 3).

A bottleneck ``F(x) = B(N(A(x)))`` (A: the 1x1 expansion, N: per-channel ops such as the depthwise conv and ReLU6,
B: the 1x1 projection) can be computed one slice of its inner channels at a time, the projections of the slices
summed into the output: the expanded tensor is never held whole, only one channel of it ("t-way split" with t = n).
What must be held is then the block's input and output (the input stays until the block ends: every slice reads it,
and the residual adds it). The same holds wherever a layer whose input is held feeds a per-channel op: the first
layer (the 3x3 stem conv, whose 32 channels the first block's depthwise conv reads channel by channel: the paper's
"trick" for the first layer) and the last 1x1 conv feeding the global average pooling. Tensors are 16-bit.

``streamed_memory`` gives, per spatial resolution, the largest tensor that must be materialised (the paper's Table 3:
MobileNetV1 1600K at 112x112, MobileNetV2 400K) and the peak of everything held at once (what a runtime's arena
would need with this schedule: a block's input + output + one channel of each streamed tensor), and beside them what
a runtime that writes every convolution's output whole (BatchNorm and activations fused) holds at its largest conv.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from torch import nn

from mobilenetv2.models.layers import ConvBNAct, DepthwiseSeparable, InvertedResidual, SqueezeExcite

ACTIVATION_BYTES = 2  # 16-bit activations, as the paper's Table 3
Shape = tuple[int, ...]


@dataclass
class Step:
    """One unit of the streamed schedule: what it reads and writes whole, what it computes one channel at a time."""

    name: str
    input: Shape
    output: Shape
    streamed: list[Shape] = field(default_factory=list)  # inner tensors, one channel held at a time
    materialised: list[Shape] = field(default_factory=list)  # inner tensors that must be whole (SE's pooled input)

    def elements(self) -> int:
        """Everything held while the step runs: input, output, materialised inner tensors, one channel per streamed one."""
        held = numel(self.input) + numel(self.output) + sum(numel(s) for s in self.materialised)
        return held + sum(numel(s) // s[1] for s in self.streamed)

    def tensors(self) -> list[Shape]:
        return [self.input, self.output, *self.materialised]


@dataclass
class StreamedMemory:
    """Table 3's column for one model (largest tensor per resolution) and the peak held at once, in KB (1000 bytes)."""

    per_resolution: list[dict[str, Any]]
    largest_kb: float
    largest_tensor: str
    peak_kb: float
    peak_step: str
    scope: str
    largest_int8_kb: float  # the same with 8-bit activations (a full-int8 model on a microcontroller)
    peak_int8_kb: float
    whole_op_kb: float  # without the split: the largest conv's input + output, each whole (BN, activations fused)
    whole_op_int8_kb: float
    whole_op: str
    steps: list[Step] = field(default_factory=list, repr=False)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("steps")
        return data


def streamed_memory(model: nn.Module, shapes: dict[str, tuple[Shape, Shape]]) -> StreamedMemory:
    """The paper's accounting of ``model`` from the input/output shapes of its modules (``profile``'s trace)."""
    pooled = _has_pooled_classifier(model)
    steps = _schedule(model, shapes, pooled)
    largest: dict[str, tuple[int, Shape]] = {}
    for step in steps:
        for shape in step.tensors():
            key = _resolution(shape)
            if numel(shape) > largest.get(key, (0, shape))[0]:
                largest[key] = (numel(shape), shape)
    rows = [{"resolution": key, "max_channels": shape[1], "kb": _kb(n)} for key, (n, shape) in largest.items()]
    top = max(largest.values(), key=lambda v: v[0])
    peak = max(steps, key=Step.elements)
    scope = "the whole model" if pooled else "the backbone (features) only: the head's tensors are not counted"
    whole, name, (inp, out) = max((numel(shapes[n][0]) + numel(shapes[n][1]), n, shapes[n])
                                  for n, m in model.named_modules() if isinstance(m, nn.Conv2d) and n in shapes)
    return StreamedMemory(rows, _kb(top[0]), _describe(top[1]), _kb(peak.elements()), _describe_step(peak), scope,
                          _kb(top[0], 1), _kb(peak.elements(), 1), _kb(whole), _kb(whole, 1),
                          f"{name}: {_describe(inp)} in, {_describe(out)} out", steps)


def _schedule(model: nn.Module, shapes: dict[str, tuple[Shape, Shape]], pooled: bool) -> list[Step]:
    """The steps in order: each block of ``features`` (a plain conv feeding a per-channel op joins its consumer),
    then, for a classifier, the global pooling and the linear layers."""
    steps: list[Step] = []
    carried: Step | None = None  # a plain conv whose output the next step reads channel by channel
    layers = list(model.features)
    for index, layer in enumerate(layers):
        name = f"features.{index}"
        step = Step(name, *shapes[name])
        step.streamed, step.materialised = _inner(layer, name, shapes)
        if carried is not None:
            step = Step(f"{carried.name}+{name}", carried.input, step.output,
                        [carried.output, *step.streamed], step.materialised)
            carried = None
        consumer = layers[index + 1] if index + 1 < len(layers) else ("pool" if pooled else None)
        if _is_plain_conv(layer) and _reads_per_channel(consumer):
            carried = step
            continue
        steps.append(step)
    if pooled:
        pooled_shape = shapes["classifier"][0]
        pool_in = carried.input if carried else steps[-1].output
        streamed = [carried.output] if carried else []
        steps.append(Step(f"{carried.name}+pool" if carried else "pool", pool_in, (1, pooled_shape[-1], 1, 1), streamed))
        for name, module in model.classifier.named_modules(prefix="classifier"):
            if isinstance(module, nn.Linear):
                (i, o) = shapes[name]
                steps.append(Step(name, (1, i[-1], 1, 1), (1, o[-1], 1, 1)))
    return steps


def _inner(layer: nn.Module, name: str, shapes: dict[str, tuple[Shape, Shape]]) -> tuple[list[Shape], list[Shape]]:
    """(streamed, materialised) inner tensors of one block: an inverted residual's expansion and depthwise outputs
    (with squeeze-and-excitation the depthwise output must be whole: its pooled mean gates every channel before the
    projection may start), a depthwise-separable block's depthwise output."""
    if isinstance(layer, InvertedResidual):
        parts = [(f"{name}.conv.{i}", part) for i, part in enumerate(layer.conv) if isinstance(part, ConvBNAct)]
        inner = [shapes[key][1] for key, _ in parts]
        has_se = any(isinstance(part, SqueezeExcite) for part in layer.conv)
        return (inner[:-1], inner[-1:]) if has_se else (inner, [])
    if isinstance(layer, DepthwiseSeparable):
        return [shapes[f"{name}.0"][1]], []
    return [], []


def _is_plain_conv(layer: nn.Module) -> bool:
    return isinstance(layer, ConvBNAct)


def _reads_per_channel(consumer: nn.Module | str | None) -> bool:
    """Whether ``consumer``'s first op reads its input channel by channel (depthwise conv, global pooling)."""
    if consumer == "pool":
        return True
    first = consumer.conv[0] if isinstance(consumer, InvertedResidual) else (
        consumer[0] if isinstance(consumer, DepthwiseSeparable) else None)
    return isinstance(first, ConvBNAct) and first[0].groups > 1 and first[0].groups == first[0].in_channels


def _has_pooled_classifier(model: nn.Module) -> bool:
    """A classifier: ``features``, global pooling, then linear layers (segmentation and detection heads are not)."""
    return not hasattr(model, "extras") and any(isinstance(m, nn.Linear) for m in model.classifier.modules())


def numel(shape: Shape) -> int:
    """Elements of one sample of a tensor of ``shape`` (batch dimension left out)."""
    n = 1
    for d in shape[1:]:
        n *= d
    return n


def _kb(elements: int, bytes_per_value: int = ACTIVATION_BYTES) -> float:
    return round(elements * bytes_per_value / 1e3, 1)


def _resolution(shape: Shape) -> str:
    return f"{shape[2]}x{shape[3]}" if len(shape) == 4 else "1x1"


def _describe(shape: Shape) -> str:
    return f"{_resolution(shape)}x{shape[1]}"


def _describe_step(step: Step) -> str:
    text = f"{step.name}: input {_describe(step.input)} + output {_describe(step.output)}"
    if step.materialised:
        text += " + " + " + ".join(_describe(s) for s in step.materialised)
    if step.streamed:
        text += f" + one channel of {len(step.streamed)} streamed tensor{'s' if len(step.streamed) > 1 else ''}"
    return text
