"""``forward_parts``: the one "concatenate, forward, split by offsets" of predict, the stream, the server and Ray."""

from __future__ import annotations

import torch

from mobilenetv2.inference.batching import forward_parts


def test_each_part_gets_its_own_rows_in_passes_of_batch_size():
    parts = [torch.full((k, 1, 2, 2), float(i)) for i, k in enumerate((1, 3, 2))]
    calls: list[int] = []

    def run(batch: torch.Tensor) -> torch.Tensor:
        calls.append(len(batch))
        return batch.flatten(1).sum(1, keepdim=True)

    outputs = forward_parts(run, parts, batch_size=4)
    assert calls == [4, 2] and [len(o) for o in outputs] == [1, 3, 2]
    assert [o.unique().tolist() for o in outputs] == [[0.0], [4.0], [8.0]]
    calls.clear()
    assert [len(o) for o in forward_parts(run, parts)] == [1, 3, 2] and calls == [6]
    assert forward_parts(run, []) == []
