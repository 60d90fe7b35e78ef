"""Predictions gathered from DistributedSampler shares come back in dataset order, padding dropped."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import DistributedSampler

from mobilenetv2.distributed import gather_across_processes, interleave
from mobilenetv2.errors import UserError
from mobilenetv2.tasks.classification.task import check_class_names


@pytest.mark.parametrize("total, world", [(10, 3), (9, 3), (7, 4), (1, 2), (5, 1)])
def test_interleave_undoes_distributed_sampler(total, world):
    dataset = list(range(total))
    shares = []
    for rank in range(world):
        indices = torch.tensor(list(DistributedSampler(dataset, num_replicas=world, rank=rank, shuffle=False)))
        shares.append((indices, torch.stack([indices.float(), -indices.float()], dim=1)))  # "logits" carry the index
    targets, logits = interleave(shares, total)
    assert targets.tolist() == dataset
    assert logits[:, 0].long().tolist() == dataset and logits.shape == (total, 2)


def test_single_process_is_a_no_op():
    t, lg = torch.arange(3), torch.zeros(3, 2)
    assert gather_across_processes(t, lg, 3) == (t, lg)


def test_class_name_mismatch_names_both_sides():
    check_class_names(["a", "b"], ["a", "b"])
    with pytest.raises(UserError, match=r"different order.*checkpoint: b, a; dataset: a, b"):
        check_class_names(["b", "a"], ["a", "b"])
    with pytest.raises(UserError, match=r"only in the checkpoint: cat; only in the dataset: ant, bee"):
        check_class_names(["cat", "dog"], ["ant", "bee", "dog"])
