"""Many inputs' model inputs through one model in shared forward passes, each given back its own rows of the outputs:
what ``Predictor.run_predictions``, the streaming pipeline, the server's batcher and the Ray actors all do."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np


def forward_parts(run: Callable[[np.ndarray], np.ndarray], parts: Sequence[np.ndarray],
                  batch_size: int | None = None) -> list[np.ndarray]:
    """The parts (each input's array [k, C, H, W]) concatenated, run through ``run`` in passes of at most
    ``batch_size`` rows (None: one pass), and the outputs split back by the parts' offsets: one [k, ...] view per part,
    in order."""
    if not parts:
        return []
    inputs = np.ascontiguousarray(parts[0]) if len(parts) == 1 else np.concatenate(list(parts))
    step = batch_size or len(inputs)
    if step >= len(inputs):
        outputs = run(inputs)
    else:
        outputs = np.concatenate([run(inputs[i:i + step]) for i in range(0, len(inputs), step)])
    return np.split(outputs, np.cumsum([len(part) for part in parts])[:-1])
