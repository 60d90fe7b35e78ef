"""Many inputs' model inputs through one model in shared forward passes, each given back its own rows of the outputs:
what ``Predictor.run_predictions``, the streaming pipeline, the server's batcher and the Ray actors all do."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch


def forward_parts(run: Callable[[torch.Tensor], torch.Tensor], parts: Sequence[torch.Tensor],
                  batch_size: int | None = None) -> list[torch.Tensor]:
    """The parts (each input's [k, C, H, W]) concatenated, run through ``run`` in passes of at most ``batch_size``
    rows (None: one pass), and the outputs split back by the parts' offsets: one [k, ...] view per part, in order."""
    if not parts:
        return []
    inputs = torch.cat(list(parts)).contiguous()
    step = batch_size or len(inputs)
    if step >= len(inputs):
        outputs = run(inputs)
    else:
        outputs = torch.cat([run(inputs[i:i + step]) for i in range(0, len(inputs), step)])
    return list(outputs.split([len(part) for part in parts]))
