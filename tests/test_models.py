"""The networks: shapes, block order, widened activations, every initialisation scheme."""

import math

import pytest
import torch
from torch import nn

from deeptune.models.choices import ACTIVATIONS, INITS
from deeptune.models.init import init_linear
from deeptune.models.mlp import MLP


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
