"""Loaders: per-epoch determinism, augmentation presets, mixup/cutmix, class balancing, distributed sharding."""

from __future__ import annotations

from collections import Counter

import pytest
import torch

from mobilenetv2.data import AUGMENT_PRESETS, DataConfig, Preprocessing, build_data, train_transform
from mobilenetv2.data.detection.loaders import build_detection_data
from mobilenetv2.data.loaders import EpochLoader, ShardSampler, WeightedEpochSampler, balanced_class_weights
from mobilenetv2.data.segmentation.loaders import build_segmentation_data


@pytest.fixture
def folder(tmp_path, imgs):
    return imgs.make_class_folder(tmp_path, {"a": 8, "b": 8, "c": 8})


def epoch_batches(data, epoch=None):
    if epoch is not None:
        data.set_epoch(epoch)
    return [(x.clone(), y.clone()) for x, y in data.train_loader]


def same(batches_a, batches_b) -> bool:
    return len(batches_a) == len(batches_b) and all(
        torch.equal(xa, xb) and torch.equal(ya, yb) for (xa, ya), (xb, yb) in zip(batches_a, batches_b))


def test_epoch_order_and_augmentation_depend_only_on_seed_and_epoch(folder):
    cfg = DataConfig(data=str(folder), input_size=32, batch_size=6, augment="paper", workers=0, seed=3)
    d = build_data(cfg)
    epoch2 = epoch_batches(d, 2)
    assert same(epoch2, epoch_batches(d, 2))  # again, after other passes
    assert not same(epoch2, epoch_batches(d, 1))
    # a fresh process (resume after a crash) with worker processes instead of none sees the same epoch
    resumed = build_data(DataConfig(**{**cfg.__dict__, "workers": 2}))
    assert same(epoch2, epoch_batches(resumed, 2))
    assert not same(epoch2, epoch_batches(build_data(DataConfig(**{**cfg.__dict__, "seed": 4})), 2))


def test_train_on_val_trains_on_every_image_and_still_validates_on_val(folder):
    plain = build_data(DataConfig(data=str(folder), input_size=32, workers=0))
    both = build_data(DataConfig(data=str(folder), input_size=32, workers=0, train_on_val=True))
    train, val = plain.train_loader.dataset, plain.val_loader.dataset
    assert len(val) > 0 and len(both.train_loader.dataset) == len(train) + len(val)
    assert sorted(both.train_loader.dataset.items) == sorted(train.items + val.items)
    assert both.val_loader.dataset.items == val.items


def test_passes_count_up_from_set_epoch(folder):
    d = build_data(DataConfig(data=str(folder), input_size=32, batch_size=6, workers=0))
    d.set_epoch(5)
    fifth, sixth = epoch_batches(d), epoch_batches(d)
    assert same(sixth, epoch_batches(d, 6)) and not same(fifth, sixth)


def test_training_augmentation_does_not_touch_the_global_rng(folder):
    d = build_data(DataConfig(data=str(folder), input_size=32, batch_size=6, workers=0))
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    epoch_batches(d, 0)
    assert torch.equal(torch.rand(3), expected)


@pytest.mark.parametrize("augment", list(AUGMENT_PRESETS))
def test_every_preset_gives_normalised_images_of_the_input_size(augment, imgs, tmp_path):
    from PIL import Image

    image = Image.open(imgs.save_image(tmp_path / "x.png", size=40))
    out = train_transform(augment, Preprocessing(input_size=32))(image)
    assert out.shape == (3, 32, 32) and out.dtype == torch.float32 and out.min() < 0


def test_light_preset_never_flips():
    image = torch.arange(64, dtype=torch.uint8).repeat(3, 64, 1)  # brightness grows left to right
    transform = train_transform("light", Preprocessing(input_size=64, mean=(0, 0, 0), std=(1, 1, 1)))
    for seed in range(20):
        torch.manual_seed(seed)
        row = transform(image)[0, 32]
        assert row[-1] > row[0]


@pytest.mark.parametrize("mixup, cutmix", [(0.2, 0.0), (0.0, 1.0), (0.2, 1.0)])
def test_mixup_cutmix_give_soft_targets_deterministically(folder, mixup, cutmix):
    d = build_data(DataConfig(data=str(folder), input_size=32, batch_size=6, workers=0, mixup=mixup, cutmix=cutmix))
    images, labels = next(iter(d.train_loader))
    d.set_epoch(1)
    mixed, targets = d.batch_transform(images, labels)
    assert mixed.shape == images.shape and targets.shape == (6, 3)
    assert torch.allclose(targets.sum(1), torch.ones(6)) and not torch.equal(mixed, images)
    d.set_epoch(1)
    again, targets_again = d.batch_transform(images, labels)
    assert torch.equal(mixed, again) and torch.equal(targets, targets_again)


def test_no_mixing_means_no_batch_transform(folder):
    assert build_data(DataConfig(data=str(folder), input_size=32, workers=0)).batch_transform is None


def test_weighted_sampler_balances_classes(tmp_path, imgs):
    imgs.make_class_folder(tmp_path, {"many": 40, "few": 5})
    cfg = DataConfig(data=str(tmp_path), input_size=32, batch_size=9, workers=0, augment="none", balance="sampler")
    d = build_data(cfg)
    counts = Counter()
    for epoch in range(4):
        counts.update(y for _, labels in epoch_batches(d, epoch) for y in labels.tolist())
    few, many = counts[0], counts[1]  # classes sort as few, many
    assert 0.6 < few / many < 1.6, counts
    assert d.class_weights is None


def test_class_weights_are_inverse_frequency(tmp_path, imgs):
    imgs.make_class_folder(tmp_path, {"many": 30, "few": 10})
    d = build_data(DataConfig(data=str(tmp_path), input_size=32, workers=0, balance="weights"))
    counts = torch.bincount(torch.tensor(d.train_loader.dataset.labels))
    assert torch.allclose(d.class_weights * counts, torch.full((2,), counts.sum() / 2.0))
    assert torch.allclose(balanced_class_weights(torch.tensor([10, 0, 30])), torch.tensor([2.0, 0.0, 2 / 3]))


def test_weighted_sampler_shards_across_ranks():
    weights = torch.ones(10)
    ranks = [WeightedEpochSampler(weights, seed=1, rank=r, num_replicas=2) for r in range(2)]
    for s in ranks:
        s.set_epoch(7)
    shards = [list(s) for s in ranks]
    single = WeightedEpochSampler(weights, seed=1)
    single.set_epoch(7)
    everything = list(single)
    assert len(shards[0]) == len(shards[1]) == 5 == len(ranks[0])
    assert shards[0] == everything[0::2] and shards[1] == everything[1::2]  # the ranks split one epoch's draw


def test_distributed_training_loader_uses_a_distributed_sampler(folder, tmp_path):
    import torch.distributed as dist
    from torch.utils.data import DistributedSampler

    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'pg'}", rank=0, world_size=1)
    try:
        d = build_data(DataConfig(data=str(folder), input_size=32, batch_size=4, workers=0))
        assert isinstance(d.train_loader.sampler, DistributedSampler)
        assert same(epoch_batches(d, 1), epoch_batches(d, 1))
        assert list(d.val_loader.sampler) == list(range(6))
    finally:
        dist.destroy_process_group()



@pytest.mark.parametrize("build", [build_segmentation_data, build_detection_data])
def test_segmentation_and_detection_loaders_are_built_the_same_way(build, tmp_path):
    import torch.distributed as dist
    from torch.utils.data import DistributedSampler

    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'pg'}", rank=0, world_size=1)
    try:
        d = build(DataConfig(data="digits", input_size=32, batch_size=4, workers=0, seed=3))
        train, val = d.train_loader, d.val_loader
        assert isinstance(train, EpochLoader) and isinstance(train.sampler, DistributedSampler) and train.drop_last
        assert train.dataset.seed == 3 and train.dataset.transform is not None and val.dataset.transform is not None
        assert isinstance(val.sampler, ShardSampler) and len(val.sampler) == 120 and not val.drop_last
    finally:
        dist.destroy_process_group()

def test_validation_shards_cover_every_image_once():
    shards = [list(ShardSampler(7, rank, 3)) for rank in range(3)]
    assert sorted(sum(shards, [])) == list(range(7)) and [len(s) for s in shards] == [3, 2, 2]
