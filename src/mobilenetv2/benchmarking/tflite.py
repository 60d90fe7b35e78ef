"""The TensorFlow Lite interpreter (LiteRT) as a timed path: the published file, uint8 input, the same threads."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from mobilenetv2.errors import UserError
from mobilenetv2.extras import require


def tflite_runner(path: str | os.PathLike[str], threads: int, resolution: int) -> Callable[[], object]:
    """A zero-argument call of the interpreter on one fixed image of the file's input type (batch 1)."""
    require("ai_edge_litert", "interop")
    from ai_edge_litert.interpreter import Interpreter

    path = Path(path)
    if not path.is_file():
        raise UserError(f"--tflite: file not found: {path}")
    interpreter = Interpreter(model_path=str(path), num_threads=threads)
    interpreter.allocate_tensors()
    (inp,) = interpreter.get_input_details()
    if tuple(inp["shape"][1:3]) != (resolution, resolution):
        raise UserError(f"--tflite {path.name} takes {inp['shape'][1]}x{inp['shape'][2]} images; the benchmark runs at "
                        f"{resolution} (give --resolution {inp['shape'][1]})")
    info = np.iinfo(inp["dtype"]) if np.issubdtype(inp["dtype"], np.integer) else None
    image = (np.random.default_rng(0).integers(info.min, info.max + 1, inp["shape"]) if info is not None
             else np.random.default_rng(0).standard_normal(inp["shape"])).astype(inp["dtype"])

    def run() -> object:
        interpreter.set_tensor(inp["index"], image)
        interpreter.invoke()
        return interpreter.get_tensor(interpreter.get_output_details()[0]["index"])

    return run


def file_size_mb(path: str | os.PathLike[str]) -> float:
    return Path(path).stat().st_size / 1e6
