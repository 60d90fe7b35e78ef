"""Foreign state dicts (torchvision, timm) mapped onto our key names, with the architecture inferred from shapes; the
TFLite and Keras readers (``tflite.py``, ``keras.py``) build on it.

Mapping (documented in the README):
- torchvision ``mobilenet_v2``: identical keys.
- torchvision ``mobilenet_v3_small/large``: ``features.i.block.j`` -> ``features.i.conv.j``, except the last
  (projection) entry ``block.k.0``/``block.k.1`` -> ``conv.k``/``conv.k+1`` (we keep conv and BN apart, as V2).
- timm ``mobilenetv2_*``: ``conv_stem``/``bn1`` -> ``features.0``; ``blocks.s.i`` -> ``features.n`` in order,
  ``conv_pw/bn1/conv_dw/bn2/conv_pwl/bn3`` -> ``conv.0.0/conv.0.1/conv.1.0/conv.1.1/conv.2/conv.3``
  (first block: ``conv_dw/bn1/conv_pw/bn2`` -> ``conv.0.0/conv.0.1/conv.1/conv.2``);
  ``conv_head``/``bn2`` -> the 1x1 head conv; ``classifier`` -> ``classifier.1``.
"""

from __future__ import annotations

import re
from typing import Any

import torch

from mobilenetv2.errors import UserError
from mobilenetv2.models.layers import make_divisible
from mobilenetv2.models.mobilenet_v2 import LAST_CHANNELS, MOBILENET_V2_TABLE, STEM_CHANNELS
from mobilenetv2.models.mobilenet_v3 import V3_TABLES

StateDict = dict[str, torch.Tensor]

# Tried in order, so the usual widths win over look-alikes.
CANDIDATE_WIDTHS = [1.0, 0.5, 0.75, 1.4, 0.35, 1.3, 0.25, 1.25, 1.5, 2.0] + [round(0.05 * i, 2) for i in range(2, 61)]


def detect_format(sd: StateDict) -> str:
    """Name the layout of a state dict: ``mobilenet_v2``, ``mobilenet_v3``, ``mobilenet_v1`` or ``timm_mobilenetv2``."""
    keys = set(sd)
    if "conv_stem.weight" in keys and any(k.startswith("blocks.0.0.conv_dw") for k in keys):
        return "timm_mobilenetv2"
    if any(".block." in k for k in keys) and "features.0.0.weight" in keys:
        return "mobilenet_v3"
    if "features.1.conv.0.0.weight" in keys:
        return "mobilenet_v2" if "features.1.conv.2.weight" in keys or "features.1.conv.1.weight" in keys else "mobilenet_v3"
    if "features.1.0.0.weight" in keys:
        return "mobilenet_v1"
    sample = ", ".join(sorted(keys)[:4])
    raise UserError(f"state dict is not a MobileNet of torchvision, timm or this project (first keys: {sample})")


def to_our_keys(sd: StateDict) -> tuple[StateDict, dict[str, Any]]:
    """Map a foreign state dict to our keys; return it with the inferred architecture ``{"name", "args"}``."""
    fmt = detect_format(sd)
    if fmt == "timm_mobilenetv2":
        sd = _from_timm_v2(sd)
        fmt = "mobilenet_v2"
    elif fmt == "mobilenet_v3" and any(".block." in k for k in sd):
        sd = _from_torchvision_v3(sd)
    sd = {k: v for k, v in sd.items()}
    return sd, infer_arch(sd, fmt)


def infer_arch(sd: StateDict, fmt: str) -> dict[str, Any]:
    """Infer name, width, classes and input channels of one of our state dicts from its tensor shapes."""
    stem = sd["features.0.0.weight"]
    head = [k for k in sd if k.startswith("classifier.") and k.endswith(".weight")]
    num_classes = sd[max(head, key=lambda k: int(k.split(".")[1]))].shape[0]
    args: dict[str, Any] = {"num_classes": int(num_classes), "in_chans": int(stem.shape[1])}
    blocks = sorted({int(k.split(".")[1]) for k in sd if k.startswith("features.")})
    if fmt == "mobilenet_v3":
        variant = "large" if len(blocks) - 2 == len(V3_TABLES["large"]) else "small"
        last = V3_TABLES[variant][-1][2]
        args |= {"variant": variant,
                 "width_mult": _match_width(_out_channels(sd, blocks[-2]), lambda w: make_divisible(last * w))}
        return {"name": "mobilenet_v3", "args": args}
    if fmt == "mobilenet_v1":
        args["width_mult"] = _match_width(stem.shape[0], lambda w: make_divisible(32 * w))
        return {"name": "mobilenet_v1", "args": args}
    head_channels = int(sd[f"features.{blocks[-1]}.0.weight"].shape[0])
    observed = [int(stem.shape[0])] + [_out_channels(sd, i) for i in _v2_row_ends()] + [head_channels]

    def signature(w: float) -> list[int]:
        rows = [make_divisible(c * w) for _, c, _, _ in MOBILENET_V2_TABLE]
        return [make_divisible(STEM_CHANNELS * w), *rows, make_divisible(LAST_CHANNELS * max(1.0, w))]

    for w in CANDIDATE_WIDTHS:
        if signature(w) == observed:
            args["width_mult"] = w
            break
    else:
        raise UserError(f"cannot infer the width of this MobileNetV2: channels {observed} fit no width multiplier")
    expanded = sd["features.2.conv.0.0.weight"].shape[0] if "features.2.conv.0.0.weight" in sd else None
    if expanded is not None:
        args["expansion"] = int(round(expanded / observed[1]))
    return {"name": "mobilenet_v2", "args": args}


def _v2_row_ends() -> list[int]:
    ends, index = [], 0
    for _, _, n, _ in MOBILENET_V2_TABLE:
        index += n
        ends.append(index)
    return ends


def _out_channels(sd: StateDict, block: int) -> int:
    convs = [k for k in sd if re.fullmatch(rf"features\.{block}\.conv\.\d+\.weight", k) and sd[k].dim() == 4]
    return int(sd[max(convs, key=lambda k: int(k.split(".")[3]))].shape[0])


def _match_width(channels: int, rule) -> float:
    for w in CANDIDATE_WIDTHS:
        if rule(w) == channels:
            return w
    raise UserError(f"cannot infer the width multiplier from {channels} channels")


def _from_torchvision_v3(sd: StateDict) -> StateDict:
    last_entry: dict[str, int] = {}
    for k in sd:
        m = re.match(r"(features\.\d+)\.block\.(\d+)\.", k)
        if m:
            last_entry[m.group(1)] = max(last_entry.get(m.group(1), 0), int(m.group(2)))
    out = {}
    for k, v in sd.items():
        m = re.match(r"(features\.\d+)\.block\.(\d+)\.(.*)", k)
        if not m:
            out[k] = v
            continue
        block, j, rest = m.group(1), int(m.group(2)), m.group(3)
        if j == last_entry[block]:
            sub, rest = rest.split(".", 1)
            out[f"{block}.conv.{j + int(sub)}.{rest}"] = v
        else:
            out[f"{block}.conv.{j}.{rest}"] = v
    return out


_TIMM_DS = {"conv_dw": "conv.0.0", "bn1": "conv.0.1", "conv_pw": "conv.1", "bn2": "conv.2"}
_TIMM_IR = {"conv_pw": "conv.0.0", "bn1": "conv.0.1", "conv_dw": "conv.1.0", "bn2": "conv.1.1",
            "conv_pwl": "conv.2", "bn3": "conv.3"}


def _from_timm_v2(sd: StateDict) -> StateDict:
    order = sorted({tuple(map(int, k.split(".")[1:3])) for k in sd if k.startswith("blocks.")})
    flat = {pos: i + 1 for i, pos in enumerate(order)}
    head = len(order) + 1
    out: StateDict = {}
    for k, v in sd.items():
        parts = k.split(".")
        if parts[0] == "blocks":
            stage, idx, layer, rest = int(parts[1]), int(parts[2]), parts[3], ".".join(parts[4:])
            table = _TIMM_DS if stage == 0 else _TIMM_IR
            if layer not in table:
                raise UserError(f"timm key {k!r} has no counterpart in MobileNetV2 (squeeze-excite variants are not supported)")
            out[f"features.{flat[(stage, idx)]}.{table[layer]}.{rest}"] = v
        elif parts[0] in ("conv_stem", "bn1"):
            out[f"features.0.{0 if parts[0] == 'conv_stem' else 1}.{'.'.join(parts[1:])}"] = v
        elif parts[0] in ("conv_head", "bn2"):
            out[f"features.{head}.{0 if parts[0] == 'conv_head' else 1}.{'.'.join(parts[1:])}"] = v
        elif parts[0] == "classifier":
            out[f"classifier.1.{'.'.join(parts[1:])}"] = v
        else:
            raise UserError(f"timm key {k!r} has no counterpart in MobileNetV2")
    return out


def load_state_dict_strict(model: torch.nn.Module, sd: StateDict, what: str = "checkpoint") -> None:
    """Load ``sd`` into ``model``, or raise one clear error listing which keys and shapes differ."""
    check_state_dict(model, sd, what)
    model.load_state_dict(sd)


def check_state_dict(model: torch.nn.Module, sd: StateDict, what: str = "checkpoint") -> None:
    """Raise one clear error if ``sd``'s keys or shapes differ from ``model``'s (works on meta tensors too)."""
    own = model.state_dict()
    missing = [k for k in own if k not in sd]
    unexpected = [k for k in sd if k not in own]
    shapes = [f"{k}: {what} {list(sd[k].shape)} vs model {list(own[k].shape)}"
              for k in own if k in sd and sd[k].shape != own[k].shape]
    if missing or unexpected or shapes:
        arch = getattr(model, "arch", {"name": type(model).__name__, "args": {}})
        args = ", ".join(f"{k}={v}" for k, v in arch["args"].items() if k in ("width_mult", "num_classes", "variant"))
        parts = []
        if shapes:
            parts.append(f"{len(shapes)} shapes differ (e.g. {shapes[0]})")
        if missing:
            parts.append(f"{len(missing)} keys missing (e.g. {missing[0]})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected keys (e.g. {unexpected[0]})")
        hint = _guess_hint(sd)
        raise UserError(f"{what} does not fit {arch['name']}({args}): {'; '.join(parts)}{hint}")


def _guess_hint(sd: StateDict) -> str:
    try:
        _, arch = to_our_keys(sd)
    except (UserError, KeyError, IndexError, ValueError):
        return ""
    args = ", ".join(f"{k}={v}" for k, v in arch["args"].items() if k in ("width_mult", "num_classes", "variant"))
    return f"; the weights look like {arch['name']}({args})"
