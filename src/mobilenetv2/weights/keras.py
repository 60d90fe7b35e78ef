"""Import ``keras.applications.MobileNetV2`` weights (any alpha) from ``.keras``, ``.h5`` or ``.weights.h5`` files.

The files are read with h5py (Keras itself is not needed): Keras 3 stores each layer's variables under
``layers/<group>/vars/<i>`` with the layer name as an attribute; legacy HDF5 files list ``weight_names`` per layer.
Keras uses TF "SAME" padding and BatchNorm eps 1e-3, so the model is built with ``tf_padding=True, bn_eps=1e-3``.
Files come from strangers: their size, and the uncompressed size of a .keras archive, are checked before reading.
"""

from __future__ import annotations

import io
import json
import os
import re
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mobilenetv2.errors import UserError
from mobilenetv2.extras import require
from mobilenetv2.models import model_from_arch
from mobilenetv2.spec import Preprocessing, read_labels
from mobilenetv2.weights.checkpoint import Checkpoint, CheckpointMeta
from mobilenetv2.weights.foreign import infer_arch, load_state_dict_strict

KERAS_BN_EPS = 1e-3
# The largest keras.applications.MobileNetV2 (alpha 1.4, 1000 classes) is 25 MB of float32 weights, 75 MB more with
# Adam's optimizer state saved alongside; 512 MiB leaves room for float64 and big heads yet refuses zip bombs.
MAX_KERAS_BYTES = 512 * 2**20
HEAD_INDEX = 18  # features.18: the 1x1 conv to 1280 channels after the 17 blocks


def convert_keras(path: str | os.PathLike[str], labels: str | os.PathLike[str] | list[str] | None = None) -> Checkpoint:
    """Read Keras MobileNetV2 weights into a Checkpoint (model, class names, preprocessing)."""
    path = Path(path)
    layers, config = _read_keras_file(path)
    sd = _state_dict(path, layers)
    if "predictions" not in layers:
        raise UserError(f"{path} has no 'predictions' layer: save the Keras model with include_top=True")
    arch = infer_arch(sd, "mobilenet_v2")
    arch["args"] |= {"tf_padding": True, "bn_eps": KERAS_BN_EPS}
    model = model_from_arch(arch)
    load_state_dict_strict(model, sd, what=f"Keras file {path.name}")
    model.eval()
    class_names = read_labels(labels, model.num_classes) if labels is not None else None
    pre = Preprocessing(input_size=_input_size(config), crop_pct=1.0, interpolation="bilinear",
                        mean=(0.5,) * 3, std=(0.5,) * 3, resize_mode="squash")  # Keras "tf" mode: x / 127.5 - 1
    meta = CheckpointMeta.for_model(model, class_names=class_names, preprocessing=pre,
                                    extra={"source": str(path), "source_format": "keras"})
    return Checkpoint(model, meta)


def _read_keras_file(path: Path) -> tuple[dict[str, list[np.ndarray]], dict[str, Any] | None]:
    """Layer name -> its variables in Keras order (kernel[, bias] or gamma, beta, moving mean, moving variance)."""
    h5py = require("h5py", "interop")

    _check_file_size(path)
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as archive:
                _check_archive(path, archive)
                config = json.loads(archive.read("config.json"))
                weights = io.BytesIO(archive.read("model.weights.h5"))
            with h5py.File(weights, "r") as f:
                return _read_h5(f), config
        with h5py.File(path, "r") as f:
            raw = f.attrs.get("model_config")
            config = json.loads(raw) if raw is not None else None
            return _read_h5(f), config
    except UserError:  # a limit: already one clear line
        raise
    except (OSError, KeyError, ValueError, zipfile.BadZipFile) as exc:
        reason = str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__
        raise UserError(f"{path} is not a readable Keras .keras/.h5 weights file ({reason})") from exc


def _mib(n: int) -> str:
    return f"{n / 2**20:,.1f} MiB"


def _check_file_size(path: Path) -> None:
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise UserError(f"{path}: cannot read the Keras file ({exc.strerror or type(exc).__name__})") from exc
    if size > MAX_KERAS_BYTES:
        raise UserError(f"{path}: {_mib(size)} is above the limit of {_mib(MAX_KERAS_BYTES)} for a Keras "
                        "MobileNetV2 file (the largest is about 100 MiB)")


def _check_archive(path: Path, archive: zipfile.ZipFile) -> None:
    """Refuse a .keras archive whose members would inflate past MAX_KERAS_BYTES, before extracting anything.

    The sizes are the ones the archive declares; zipfile never inflates a member past its declared size.
    """
    members = archive.infolist()
    biggest = max(members, key=lambda m: m.file_size, default=None)
    total = sum(m.file_size for m in members)
    if total > MAX_KERAS_BYTES:
        what = f"member {biggest.filename!r} alone is" if biggest.file_size > MAX_KERAS_BYTES else "its members are"
        size = biggest.file_size if biggest.file_size > MAX_KERAS_BYTES else total
        raise UserError(f"{path}: {what} {_mib(size)} uncompressed, above the limit of {_mib(MAX_KERAS_BYTES)} "
                        "(not a Keras MobileNetV2 file; a zip bomb?)")


def _read_h5(f: Any) -> dict[str, list[np.ndarray]]:
    if "layers" in f and "model_weights" not in f:  # Keras 3 .weights.h5 (also inside .keras archives)
        layers = {}
        for key, group in f["layers"].items():
            variables = group.get("vars")
            if variables is not None and len(variables):
                name = _text(variables.attrs.get("name", key))
                layers[name] = [np.asarray(variables[str(i)]) for i in range(len(variables))]
        return layers
    root = f.get("model_weights", f)
    if "layer_names" not in root.attrs:
        raise KeyError("no Keras layers in the file")
    layers = {}
    for name in map(_text, root.attrs["layer_names"]):
        names = [_text(n) for n in root[name].attrs.get("weight_names", [])]
        if names:
            layers[name] = [np.asarray(root[name][n]) for n in names]
    return layers


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _our_prefix(name: str) -> tuple[str, str] | None:
    """Keras layer name -> (our key prefix, "conv" | "bn" | "dense"); None for a layer that is not MobileNetV2's."""
    fixed = {"Conv1": ("features.0.0", "conv"), "bn_Conv1": ("features.0.1", "bn"),
             "expanded_conv_depthwise": ("features.1.conv.0.0", "conv"),
             "expanded_conv_depthwise_BN": ("features.1.conv.0.1", "bn"),
             "expanded_conv_project": ("features.1.conv.1", "conv"), "expanded_conv_project_BN": ("features.1.conv.2", "bn"),
             "Conv_1": (f"features.{HEAD_INDEX}.0", "conv"), "Conv_1_bn": (f"features.{HEAD_INDEX}.1", "bn"),
             "predictions": ("classifier.1", "dense")}
    if name in fixed:
        return fixed[name]
    m = re.fullmatch(r"block_(\d+)_(expand|depthwise|project)(_BN)?", name)
    if not m:
        return None
    slot = {"expand": ("0.0", "0.1"), "depthwise": ("1.0", "1.1"), "project": ("2", "3")}[m.group(2)]
    return f"features.{int(m.group(1)) + 1}.conv.{slot[1] if m.group(3) else slot[0]}", "bn" if m.group(3) else "conv"


def _state_dict(path: Path, layers: dict[str, list[np.ndarray]]) -> dict[str, torch.Tensor]:
    sd: dict[str, torch.Tensor] = {}
    for name, values in layers.items():
        target = _our_prefix(name)
        if target is None:
            raise UserError(f"{path}: layer {name!r} has weights but is not a layer of keras.applications.MobileNetV2")
        prefix, kind = target
        tensors = [torch.from_numpy(np.ascontiguousarray(v, dtype=np.float32)) for v in values]
        if kind == "bn":
            if len(tensors) != 4:
                raise UserError(f"{path}: BatchNormalization {name!r} has {len(tensors)} variables, expected 4")
            for key, value in zip(("weight", "bias", "running_mean", "running_var"), tensors):
                sd[f"{prefix}.{key}"] = value
            sd[f"{prefix}.num_batches_tracked"] = torch.tensor(0)
        elif kind == "dense":
            sd[f"{prefix}.weight"] = tensors[0].T.contiguous()
            sd[f"{prefix}.bias"] = tensors[1]
        elif "depthwise" in name:
            sd[f"{prefix}.weight"] = tensors[0].permute(2, 3, 0, 1).flatten(0, 1).unsqueeze(1).contiguous()  # HWC1 -> C1HW
        else:
            sd[f"{prefix}.weight"] = tensors[0].permute(3, 2, 0, 1).contiguous()  # HWIO -> OIHW
    if "features.0.0.weight" not in sd:
        raise UserError(f"{path}: no 'Conv1' layer; not a keras.applications.MobileNetV2")
    return sd


def _input_size(config: dict[str, Any] | None) -> int:
    """The square input size saved in the model config, or 224 when it is absent or dynamic."""
    try:
        first = config["config"]["layers"][0]["config"]
        shape = first.get("batch_shape") or first.get("batch_input_shape")
        height, width = int(shape[1]), int(shape[2])
    except (KeyError, IndexError, TypeError, ValueError):
        return 224
    return height if height == width and height >= 32 else 224
