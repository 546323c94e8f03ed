"""Unit tests for the parts that are easy to get subtly wrong."""

import math

import numpy as np
import pytest
import torch
from torch import nn

from deeptune.data.datamodule import TensorBatches, split
from deeptune.data.sources import Table, digits, spirals
from deeptune.models.choices import ACTIVATIONS, INITS
from deeptune.models.init import init_linear
from deeptune.models.mlp import MLP
from deeptune.optim.lbfgs import LBFGS
from deeptune.optim.schedulers import two_stage_exponential, warmup


@pytest.mark.parametrize("activation", list(ACTIVATIONS))
@pytest.mark.parametrize("norm", ["none", "batch", "layer"])
def test_mlp_shapes(activation, norm):
    net = MLP(
        5,
        3,
        depth=3,
        width=[8, 6, 6],
        activation=activation,
        norm=norm,
        residual=True,
        maxout_pieces=3,
    )
    assert net(torch.randn(4, 5)).shape == (4, 3)
    assert [b.linear.in_features for b in net.hidden] == [5, 8, 6]
    assert [b.residual for b in net.hidden] == [False, False, True]


def test_block_order_is_linear_norm_activation_dropout():
    block = MLP(4, 2, depth=1, width=8, norm="batch", dropout=0.5).hidden[0]
    assert [type(m).__name__ for m in block.children()] == [
        "Linear",
        "BatchNorm1d",
        "ReLU",
        "Dropout",
    ]


def test_maxout_and_geglu_widen_the_linear_map():
    assert MLP(4, 2, 1, 8, activation="maxout", maxout_pieces=3).hidden[0].linear.out_features == 24
    assert MLP(4, 2, 1, 8, activation="geglu").hidden[0].linear.out_features == 16


@pytest.mark.parametrize(
    ("scheme", "activation", "std"),
    [
        ("kaiming_normal", "relu", math.sqrt(2 / 400)),
        ("kaiming_normal", "tanh", 5 / 3 / math.sqrt(400)),
        ("xavier_normal", "tanh", 5 / 3 * math.sqrt(2 / (400 + 300))),
        ("xavier_uniform", "sigmoid", math.sqrt(2 / 700)),
        ("scaled_normal", "relu", 1 / math.sqrt(400)),
        ("normal", "relu", 1.0),
        ("uniform", "relu", 1 / math.sqrt(400) / math.sqrt(3)),
    ],
)
def test_init_scale(scheme, activation, std):
    torch.manual_seed(0)
    layer = nn.Linear(400, 300)
    init_linear(layer, scheme, activation)
    assert layer.weight.std().item() == pytest.approx(std, rel=0.03)
    assert layer.bias.abs().sum() == 0


def test_zeros_init_never_breaks_symmetry():
    net = MLP(4, 3, depth=2, width=6, init="zeros")
    x = torch.randn(16, 4)
    nn.functional.cross_entropy(net(x), torch.randint(0, 3, (16,))).backward()
    assert net.hidden[0].linear.weight.grad.abs().sum() == 0  # nothing flows back


@pytest.mark.parametrize("scheme", INITS)
def test_every_init_name_is_implemented(scheme):
    torch.manual_seed(0)
    layer = nn.Linear(200, 100)
    before = layer.weight.detach().clone()
    init_linear(layer, scheme, "relu")
    weight = layer.weight.detach()
    assert torch.isfinite(weight).all()
    if scheme == "default":  # PyTorch's own initialisation is kept as it is
        assert torch.equal(weight, before)
        return
    assert layer.bias.abs().sum() == 0
    if scheme == "zeros":
        assert weight.abs().sum() == 0
    else:  # a fresh draw, not PyTorch's
        assert not torch.equal(weight, before) and weight.std() > 0


def test_an_unknown_init_name_is_refused():
    with pytest.raises(ValueError, match="unknown init scheme 'he'"):
        init_linear(nn.Linear(3, 3), "he", "relu")


def test_two_stage_schedule_is_continuous():
    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = two_stage_exponential(opt, gamma=0.9, gamma_after=0.5, switch_epoch=3)
    lrs = []
    for _ in range(6):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs == pytest.approx([1, 0.9, 0.81, 0.729, 0.3645, 0.18225])


def test_warmup_then_cosine():
    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = warmup(opt, warmup_epochs=2, start_factor=0.1, max_epochs=6)
    lrs = []
    for _ in range(6):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs[0] == pytest.approx(0.1) and lrs[2] == pytest.approx(1.0)
    assert lrs[2] > lrs[3] > lrs[4] > lrs[5]


def test_lbfgs_weight_decay_is_l2():
    """With weight decay the minimiser of (w - 1)^2 moves to 1 / (1 + wd / 2)."""
    for wd, expected in [(0.0, 1.0), (1.0, 2 / 3)]:
        w = nn.Parameter(torch.zeros(1))
        opt = LBFGS([w], lr=1.0, weight_decay=wd, line_search_fn="strong_wolfe")

        def closure(w=w, opt=opt):
            opt.zero_grad()
            loss = (w - 1).pow(2).sum()
            loss.backward()
            return loss

        for _ in range(5):
            opt.step(closure)
        assert w.item() == pytest.approx(expected, abs=1e-4)


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
