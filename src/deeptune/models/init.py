"""Weight initialisation schemes, applied to every linear layer with the activation's gain."""

import math

import torch
from torch import nn

# torch.nn.init.calculate_gain knows these names; the ReLU-like smooth activations
# (gelu, silu, elu) use ReLU's gain, and the piecewise-linear maxout / gated geglu use 1.
_GAIN_NAME = {
    "relu": "relu",
    "leaky_relu": "leaky_relu",
    "tanh": "tanh",
    "sigmoid": "sigmoid",
    "selu": "selu",
    "gelu": "relu",
    "silu": "relu",
    "elu": "relu",
    "maxout": "linear",
    "geglu": "linear",
    "linear": "linear",
}
LEAKY_SLOPE = 0.01  # torch.nn.LeakyReLU's default


def _gain(activation: str) -> float:
    name = _GAIN_NAME[activation]
    return nn.init.calculate_gain(name, LEAKY_SLOPE if name == "leaky_relu" else None)


def _kaiming_args(activation: str) -> dict:
    name = _GAIN_NAME[activation]
    return {"a": LEAKY_SLOPE if name == "leaky_relu" else 0.0, "nonlinearity": name}


def init_linear(layer: nn.Linear | nn.Conv2d, scheme: str, activation: str) -> None:
    """Initialise `layer` for the `activation` that follows it ("linear" for the output layer).

    A convolution's fan-in is in_channels * kernel area, as torch.nn.init computes it."""
    if scheme == "default":  # PyTorch's own: kaiming_uniform(a=sqrt(5)) and a fan-in bias
        return
    w, fan_in = layer.weight, layer.weight[0].numel()
    with torch.no_grad():
        if scheme == "uniform":  # the classic U(-1/sqrt(n), 1/sqrt(n)) heuristic
            bound = 1.0 / math.sqrt(fan_in)
            nn.init.uniform_(w, -bound, bound)
        elif scheme == "normal":  # N(0, 1): activations blow up with depth
            nn.init.normal_(w, 0.0, 1.0)
        elif scheme == "scaled_normal":  # N(0, 1/n_in), LeCun
            nn.init.normal_(w, 0.0, 1.0 / math.sqrt(fan_in))
        elif scheme == "xavier_uniform":
            nn.init.xavier_uniform_(w, gain=_gain(activation))
        elif scheme == "xavier_normal":
            nn.init.xavier_normal_(w, gain=_gain(activation))
        elif scheme == "kaiming_uniform":
            nn.init.kaiming_uniform_(w, **_kaiming_args(activation))
        elif scheme == "kaiming_normal":
            nn.init.kaiming_normal_(w, **_kaiming_args(activation))
        elif scheme == "orthogonal":
            nn.init.orthogonal_(w, gain=_gain(activation))
        elif scheme == "zeros":  # every unit identical: symmetry is never broken
            nn.init.zeros_(w)
        else:
            raise ValueError(f"unknown init scheme {scheme!r}")
        if layer.bias is not None:
            nn.init.zeros_(layer.bias)
