"""Activations that torch.nn does not provide."""

import torch
from torch import nn


class Maxout(nn.Module):
    """Maxout (Goodfellow et al., 2013): the max over k linear pieces.

    The preceding linear map is k times wider; this takes the max over each group of k.
    """

    def __init__(self, pieces: int = 2):
        super().__init__()
        self.pieces = pieces

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.unflatten(-1, (-1, self.pieces)).amax(-1)

    def extra_repr(self) -> str:
        return f"pieces={self.pieces}"


class GEGLU(nn.Module):
    """GELU-gated linear unit (Shazeer, 2020): half of a doubled linear map gates the other."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        value, gate = x.chunk(2, dim=-1)
        return value * nn.functional.gelu(gate)


class SwiGLU(nn.Module):
    """Swish-gated linear unit (Shazeer, 2020): like GEGLU, with SiLU (swish) as the gate."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        value, gate = x.chunk(2, dim=-1)
        return value * nn.functional.silu(gate)
