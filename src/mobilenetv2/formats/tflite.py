"""LiteRT / TensorFlow Lite flatbuffers (``.tflite``): run by the LiteRT interpreter. Our metadata (class names,
preprocessing, task) lives in FILE.tflite.json beside the file; a file without it (a published one) is read as a
classifier whose preprocessing its input tensor implies (size, and the scale of a quantised input)."""

from __future__ import annotations

from pathlib import Path

from mobilenetv2.backends.litert import open_interpreter
from mobilenetv2.formats.base import Format
from mobilenetv2.weights import CheckpointMeta
from mobilenetv2.weights.tflite import input_preprocessing


class TFLiteFormat(Format):
    name = "tflite"
    suffix = ".tflite"
    sidecar = True

    def read_meta(self, path: Path) -> tuple[CheckpointMeta, str | None]:
        if self.sidecar_path(path).is_file():
            return super().read_meta(path)
        pre = input_preprocessing(open_interpreter(path))
        return CheckpointMeta(architecture={}, preprocessing=pre), None


FORMAT = TFLiteFormat()
