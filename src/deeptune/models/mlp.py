"""A configurable multi-layer perceptron."""

import math
from collections.abc import Sequence

from hydra.utils import get_class
from torch import nn

from deeptune.models.choices import ACTIVATIONS, NORMS
from deeptune.models.init import init_linear


class Block(nn.Module):
    """linear -> norm -> activation -> dropout, with an optional identity skip."""

    def __init__(self, n_in, n_out, activation, norm, dropout, residual, maxout_pieces):
        super().__init__()
        path, expansion = ACTIVATIONS[activation]
        expansion = expansion or maxout_pieces
        self.linear = nn.Linear(n_in, n_out * expansion)
        norm_cls = NORMS[norm]
        self.norm = get_class(norm_cls)(n_out * expansion) if norm_cls else nn.Identity()
        act_cls = get_class(path)
        self.act = act_cls(maxout_pieces) if activation == "maxout" else act_cls()
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.residual = residual and n_in == n_out

    def forward(self, x):
        h = self.dropout(self.act(self.norm(self.linear(x))))
        return x + h if self.residual else h


class MLP(nn.Module):
    """`depth` hidden blocks of `width` units (or one width per block), then a linear head.

    `input_shape` is one sample's shape (or its number of features); a sequence
    (seq_len, features) is flattened into seq_len * features inputs. `outputs`: one per class,
    or 1 for regression.
    """

    def __init__(
        self,
        input_shape: int | Sequence[int],
        outputs: int,
        depth: int = 2,
        width: int | Sequence[int] = 128,
        activation: str = "relu",
        norm: str = "none",
        init: str = "default",
        dropout: float = 0.0,
        residual: bool = False,
        maxout_pieces: int = 2,
    ):
        super().__init__()
        widths = [width] * depth if isinstance(width, int) else list(width)
        if len(widths) != depth:
            raise ValueError(f"model.width lists {len(widths)} widths but model.depth={depth}")
        shape = (input_shape,) if isinstance(input_shape, int) else tuple(input_shape)
        sizes = [math.prod(shape), *widths]
        self.hidden = nn.ModuleList(
            Block(n_in, n_out, activation, norm, dropout, residual, maxout_pieces)
            for n_in, n_out in zip(sizes[:-1], sizes[1:], strict=True)
        )
        self.head = nn.Linear(sizes[-1], outputs)
        for block in self.hidden:
            init_linear(block.linear, init, activation)
        init_linear(self.head, init, "linear")

    def forward(self, x):
        x = x.flatten(1)  # (batch, features) stays as it is
        for block in self.hidden:
            x = block(x)
        return self.head(x)
