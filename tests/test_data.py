"""The data path: batches sliced from tensors, DDP shards, the stratified split and its folds."""

import numpy as np
import torch

from deeptune.data.datamodule import TensorBatches, split
from deeptune.data.sources import Table, digits, spirals


def test_batches_are_slices_with_a_seeded_order():
    x, y = torch.arange(10.0).unsqueeze(1), torch.arange(10)
    plain = TensorBatches(x, y, batch_size=4)
    assert len(plain) == 3 and [len(b[1]) for b in plain] == [4, 4, 2]

    def order(batches, epoch):
        batches.epoch = lambda: epoch  # the trainer's counter in a real run
        return torch.cat([yb for _, yb in batches])

    a, b = (TensorBatches(x, y, 4, shuffle=True, seed=3) for _ in range(2))
    assert torch.equal(order(a, 0), order(b, 0))  # same seed, same order
    assert not torch.equal(order(a, 0), order(a, 1))  # a new permutation every epoch
    assert torch.equal(order(a, 5), order(b, 5))  # epoch 5 does not depend on epochs 0-4
    assert sorted(order(a, 2).tolist()) == list(range(10))


def test_ddp_shards_are_disjoint_and_equal():
    x, y = torch.arange(11.0).unsqueeze(1), torch.arange(11)
    shards = [
        torch.cat(
            [
                yb
                for _, yb in TensorBatches(
                    x, y, 2, shuffle=True, seed=1, rank=r, world_size=2, equal_shards=True
                )
            ]
        )
        for r in range(2)
    ]
    assert len(shards[0]) == len(shards[1]) == 5
    assert not set(shards[0].tolist()) & set(shards[1].tolist())


def test_split_is_stratified_and_standardised_on_train_only():
    table = digits()
    parts = split(table, 0.15, 0.15, seed=0, standardize=True)
    assert sum(len(y) for _, y in parts.values()) == len(table.y)
    x_train = parts["train"][0]
    assert np.abs(x_train.mean(0)).max() < 1e-5  # fitted here ...
    assert np.abs(parts["test"][0].mean(0)).max() > 1e-3  # ... not here
    for _, y in parts.values():
        assert np.bincount(y).min() / np.bincount(y).max() > 0.8  # classes balanced in each
    again = split(table, 0.15, 0.15, seed=0, standardize=True)
    assert np.array_equal(again["test"][1], parts["test"][1])


def test_labels_are_encoded():
    table = Table.from_labels(np.zeros((3, 2)), np.array(["b", "a", "b"]))
    assert table.classes == ["a", "b"] and table.y.tolist() == [1, 0, 1]
    assert spirals(n_samples=90, n_classes=3).x.shape == (90, 2)


def test_k_folds_partition_train_and_val_and_keep_test():
    table = digits()
    parts = [split(table, 0.15, 0.15, 0, False, fold=(k, 4)) for k in range(4)]
    test_sets = [p["test"][0].tobytes() for p in parts]
    assert len(set(test_sets)) == 1  # the test split never moves
    vals = np.concatenate([p["val"][1] for p in parts])
    n_rest = len(table.y) - len(parts[0]["test"][1])
    assert len(vals) == n_rest  # every non-test sample validates exactly once
    for p in parts:
        assert len(p["train"][1]) + len(p["val"][1]) == n_rest
