"""TensorFlow Lite Micro as a backend: a full-integer ``.tflite`` file run by the interpreter that microcontrollers
run (the ``tflite-micro`` package's Python build of it, reference kernels), to check on the host that the file works
there, gives LiteRT's outputs, and fits a board: the tensor arena TFLM allocates (``arena_bytes``, SRAM) and the file
(flash). Tensor details (types, quantisation, what the output holds) are read through LiteRT from the same file."""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mobilenetv2.backends.base import RuntimeOptions
from mobilenetv2.backends.litert import LiteRTRuntime
from mobilenetv2.errors import UserError
from mobilenetv2.extras import require

if TYPE_CHECKING:
    from mobilenetv2.weights import CheckpointMeta

MAX_ARENA_BYTES = 64 << 20  # far beyond any microcontroller's SRAM: a model needing more is refused in one line
ARENA_LINE = re.compile(r"Arena allocation total (\d+) bytes")


def native_stderr(call: Any) -> tuple[Any, str]:
    """``call()``'s result and what it wrote to file descriptor 2 (TFLM's C++ logs)."""
    with tempfile.TemporaryFile() as sink:
        saved = os.dup(2)
        os.dup2(sink.fileno(), 2)
        try:
            result = call()
        except (RuntimeError, ValueError) as exc:
            result = exc
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        sink.seek(0)
        return result, sink.read().decode(errors="replace")


def open_micro(path: Path) -> Any:
    """TFLM's interpreter on ``path`` with a large arena; one line naming the cause when TFLM cannot run the file."""
    require("tflite_micro", "tflm")
    from tflite_micro.python.tflite_micro import runtime

    micro, log = native_stderr(lambda: runtime.Interpreter.from_file(str(path), arena_size=MAX_ARENA_BYTES))
    if isinstance(micro, Exception):
        cause = next((line for line in log.splitlines() if "failed" in line or "not" in line), str(micro))
        raise UserError(f"{path}: TensorFlow Lite Micro cannot run this file ({cause.strip()}); it takes full-integer "
                        f"files: mobilenetv2 quantize CKPT --out NAME.int8.tflite --io int8")
    return micro


class TFLMRuntime(LiteRTRuntime):
    """A ``.tflite`` file in TensorFlow Lite Micro's interpreter; ``arena_bytes`` is the SRAM its tensors take."""

    backend = "tflm"

    def __init__(self, path: Path, meta: CheckpointMeta, options: RuntimeOptions | None = None, *,
                 format: str, precision: str | None = None) -> None:  # noqa: A002
        super().__init__(path, meta, options, format=format, precision=precision)
        self.micro = open_micro(path)
        self.arena_bytes = self.measure_arena()
        self.flash_bytes = Path(path).stat().st_size

    def measure_arena(self) -> int:
        """The bytes of the tensor arena TFLM allocated (its recording allocator's total: tensors, plans, scratch)."""
        self.run(np.zeros(self.input_shape, self.input_dtype))
        _, log = native_stderr(self.micro.print_allocations)
        found = ARENA_LINE.search(log)
        if not found:
            raise UserError(f"{self.path}: TensorFlow Lite Micro did not report its arena ({log.strip()[:120]!r})")
        return int(found.group(1))

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "arena_bytes": self.arena_bytes, "flash_bytes": self.flash_bytes}

    def run(self, inputs: np.ndarray) -> np.ndarray:
        self.micro.set_input(np.ascontiguousarray(inputs), 0)
        self.micro.invoke()
        return self.micro.get_output(0)
