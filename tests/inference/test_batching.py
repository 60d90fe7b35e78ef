"""``forward_parts``: the one "concatenate, forward, split by offsets" of predict, the stream, the server and Ray."""

from __future__ import annotations

import numpy as np

from mobilenetv2.inference.batching import forward_parts


def test_each_part_gets_its_own_rows_in_passes_of_batch_size():
    parts = [np.full((k, 1, 2, 2), float(i), np.float32) for i, k in enumerate((1, 3, 2))]
    calls: list[int] = []

    def run(batch: np.ndarray) -> np.ndarray:
        calls.append(len(batch))
        return batch.reshape(len(batch), -1).sum(1, keepdims=True)

    outputs = forward_parts(run, parts, batch_size=4)
    assert calls == [4, 2] and [len(o) for o in outputs] == [1, 3, 2]
    assert [np.unique(o).tolist() for o in outputs] == [[0.0], [4.0], [8.0]]
    calls.clear()
    assert [len(o) for o in forward_parts(run, parts)] == [1, 3, 2] and calls == [6]
    assert forward_parts(run, []) == []
    flipped = forward_parts(lambda batch: batch * 1, [np.arange(4, dtype=np.float32).reshape(1, 1, 2, 2)[..., ::-1]])
    assert flipped[0].ravel().tolist() == [1.0, 0.0, 3.0, 2.0]
