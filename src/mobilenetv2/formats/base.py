"""What every file format does: export a model with its metadata, quantize (where the format has int8), read the
metadata back, and open the file on one of its backends. One module per format implements ``Format``."""

from __future__ import annotations

import json
import os
from abc import ABC
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from mobilenetv2.backends import get_backend
from mobilenetv2.backends.base import PRECISIONS, Runtime, RuntimeOptions
from mobilenetv2.errors import UserError, first_line
from mobilenetv2.formats.registry import FORMATS, FormatEntry
from mobilenetv2.io import atomic_write_text
from mobilenetv2.spec import Preprocessing
from mobilenetv2.weights.meta import TASK_NAMES, CheckpointMeta

if TYPE_CHECKING:
    import numpy as np
    from torch import nn

    from mobilenetv2.formats.verify import ExportCheck

# Keys of the metadata stored in (or beside) exported files; the values are JSON.
META_TASK = "mobilenetv2.task"
META_ARCHITECTURE = "mobilenetv2.architecture"
META_CLASS_NAMES = "mobilenetv2.class_names"
META_PREPROCESSING = "mobilenetv2.preprocessing"
META_PRECISION = "mobilenetv2.precision"


def metadata_entries(meta: CheckpointMeta, precision: str = "fp32") -> dict[str, str]:
    """What an exported file stores beside the graph, as JSON strings: task, architecture, class names, preprocessing,
    precision."""
    return {META_TASK: json.dumps(meta.task), META_ARCHITECTURE: json.dumps(meta.architecture),
            META_CLASS_NAMES: json.dumps(meta.class_names), META_PREPROCESSING: json.dumps(meta.preprocessing.to_dict()),
            META_PRECISION: json.dumps(precision)}


def meta_from_entries(entries: dict[str, str], where: object, input_size: int | None = None) -> tuple[CheckpointMeta, str | None]:
    """(metadata, precision or None) from stored entries; a file without them is a classifier at ``input_size``."""
    try:
        values = {key: json.loads(value) for key, value in entries.items() if key.startswith("mobilenetv2.")}
    except ValueError as exc:
        raise UserError(f"{where}: its mobilenetv2 metadata is not JSON ({first_line(exc)})") from exc
    task = values.get(META_TASK) or "classification"
    names = values.get(META_CLASS_NAMES)
    arch = values.get(META_ARCHITECTURE) or {}
    stored = values.get(META_PREPROCESSING)
    precision = values.get(META_PRECISION)
    if task not in TASK_NAMES:
        raise UserError(f"{where}: unknown task {task!r} in its metadata; known: {', '.join(TASK_NAMES)}")
    if names is not None and not (isinstance(names, list) and all(isinstance(n, str) for n in names)):
        raise UserError(f"{where}: the class names in its metadata are not a list of strings")
    if not isinstance(arch, dict) or precision not in (None, *PRECISIONS):
        raise UserError(f"{where}: malformed architecture or precision in its metadata")
    try:
        pre = Preprocessing.from_dict(stored) if stored else Preprocessing(input_size=input_size or 224)
    except (TypeError, AttributeError) as exc:
        raise UserError(f"{where}: malformed preprocessing in its metadata ({first_line(exc)})") from exc
    return CheckpointMeta(architecture=arch, task=task, class_names=names, preprocessing=pre), precision


@dataclass(frozen=True)
class QuantizeOptions:
    """int8 post-training quantization options; each format says which it has (``Format.quantize_method``)."""

    method: str | None = None        # activation range calibration (onnxruntime: minmax, percentile, entropy)
    quant_format: str = "qdq"        # onnxruntime's operator form: qdq or qoperator
    per_channel: bool = True
    reduce_range: bool = False
    io: str | None = None            # LiteRT's input/output type: uint8, int8 or float (None: the format's default)


class Format(ABC):
    """A file format: ``export``/``quantize`` write it, ``read_meta`` and ``open`` read it."""

    name: ClassVar[str]                 # its entry in the registry (``formats/registry.py``), which says the rest
    sidecar: ClassVar[bool] = False     # metadata in FILE.json beside the file (the format has no field for it)
    checks_itself: ClassVar[bool] = False  # export_checked checks its files (Core ML: its runtime is macOS/iOS only)
    companions: ClassVar[tuple[str, ...]] = ()  # suffixes of files that travel with it, named after it (IR: ".bin")

    @property
    def entry(self) -> FormatEntry:
        """This format's registry entry: its suffixes, backends, title."""
        return FORMATS[self.name]

    @property
    def suffix(self) -> str:
        """What export names its files: NAME + suffix (the entry's first)."""
        return self.entry.suffixes[0]

    # -- writing ------------------------------------------------------------------------------------------------------
    def export(self, model: nn.Module, path: Path, meta: CheckpointMeta, *, opset: int | None = None) -> None:
        """Write ``model`` (BatchNorm folded, eval mode) to ``path`` with ``meta`` stored in it. Not atomic by itself:
        the exporter writes a temporary name and verifies the file before it takes its own."""
        raise UserError(f"mobilenetv2 does not write {self.name} files")

    def export_checked(self, model: nn.Module, path: Path, meta: CheckpointMeta, *, opset: int | None = None,
                       images: list[str] | None = None, int8_weights: bool = False) -> ExportCheck:
        """Export and check the file itself, for a format whose backend does not run everywhere (``checks_itself``:
        Core ML); the others are run on their backend and compared with PyTorch by the exporter."""
        raise NotImplementedError

    def quantize_method(self, options: QuantizeOptions) -> str:
        """The calibration method's name for ``options``; one line for options this format does not have."""
        raise UserError(f"no int8 quantization for the {self.name} format here")

    def quantize(self, model: nn.Module, path: Path, meta: CheckpointMeta, calibration: Iterable[np.ndarray],
                 options: QuantizeOptions, *, fp32_path: Path | None = None) -> None:
        """Write an int8 model to ``path``, calibrated on ``calibration`` batches (normalised float32 NCHW);
        ``fp32_path``: this format's fp32 export of the same model, when the quantizer starts from the file."""
        raise UserError(f"no int8 quantization for the {self.name} format here")

    def sidecar_path(self, path: str | os.PathLike[str]) -> Path:
        """Where the metadata of ``model.pte`` lives: ``model.pte.json``."""
        path = Path(path)
        return path.with_name(path.name + ".json")

    def outputs(self, path: str | os.PathLike[str]) -> list[Path]:
        """The files an export to ``path`` leaves: the model, its companions, and its metadata JSON for sidecar formats."""
        path = Path(path)
        return [path, *(path.with_suffix(s) for s in self.companions), *([self.sidecar_path(path)] if self.sidecar else [])]

    def finish(self, path: Path, meta: CheckpointMeta, precision: str) -> None:
        """After the file took its name: write its metadata JSON beside it (sidecar formats only)."""
        if self.sidecar:
            atomic_write_text(self.sidecar_path(path), json.dumps(
                {k: json.loads(v) for k, v in metadata_entries(meta, precision).items()}, indent=2))

    # -- reading ------------------------------------------------------------------------------------------------------
    def read_meta(self, path: Path) -> tuple[CheckpointMeta, str | None]:
        """(metadata, precision or None when the file does not say) of the file at ``path``."""
        if not self.sidecar:
            raise NotImplementedError
        side = self.sidecar_path(path)
        if not side.is_file():
            return meta_from_entries({}, path), None
        try:
            stored = json.loads(side.read_text())
            entries = {k: json.dumps(v) for k, v in stored.items()}
        except (ValueError, AttributeError, OSError) as exc:
            raise UserError(f"{side} is not the metadata JSON that export writes ({first_line(exc)})") from exc
        return meta_from_entries(entries, side)

    def open(self, path: Path, backend: str, options: RuntimeOptions, meta: CheckpointMeta | None = None,
             precision: str | None = None) -> Runtime:
        """The file on ``backend`` (one of this format's), told that it is this format; ``meta``: use it instead of
        reading the file's."""
        if meta is None:
            meta, stored = self.read_meta(path)
            precision = precision or stored
        cls = get_backend(backend).runtime_class()
        return cls(path, meta, options, format=self.name, **({"precision": precision} if precision else {}))

