"""A Transformer encoder for sequences and text: embedded inputs, positions, `depth` encoder
blocks, a pooled representation, a linear head."""

import math
from collections.abc import Sequence

import torch
from torch import nn

from deeptune.errors import ConfigError
from deeptune.models.layers import GEGLU, SwiGLU

GATES = {"geglu": GEGLU, "swiglu": SwiGLU}  # half of a doubled linear map gates the other
NORM_LAYERS = {"layer": nn.LayerNorm, "rms": nn.RMSNorm}


class EncoderBlock(nn.TransformerEncoderLayer):
    """torch's encoder layer (self-attention and a feed-forward map, each with dropout, a
    residual and a norm; `pre`: the norm before each, else after), with what torch cannot be
    told: a gated feed-forward map (GEGLU / SwiGLU: linear1 twice as wide, the gate halving it
    again before linear2) and RMSNorm in place of LayerNorm. With relu / gelu and layer norm it is
    torch's layer unchanged, its fused inference path included."""

    def __init__(self, width, heads, ff_width, activation, norm, pre, dropout):
        gate = GATES.get(activation)
        super().__init__(
            width,
            heads,
            ff_width,
            dropout,
            activation=gate() if gate else activation,
            batch_first=True,
            norm_first=pre,
        )
        if gate:
            self.linear1 = nn.Linear(width, 2 * ff_width)
        if norm != "layer":
            self.norm1, self.norm2 = NORM_LAYERS[norm](width), NORM_LAYERS[norm](width)
            # torch's fused inference path reads the norms' biases, which RMSNorm has none of:
            # keep to the module path (as it already does for a gated activation).
            self.activation_relu_or_gelu = 0


def sinusoidal(length: int, width: int) -> torch.Tensor:
    """(length, width) fixed positions (Vaswani et al., 2017): sines and cosines of geometrically
    spaced frequencies."""
    position = torch.arange(length, dtype=torch.float32)[:, None]
    frequency = torch.exp(torch.arange(0, width, 2, dtype=torch.float32) * -(math.log(1e4) / width))
    table = torch.zeros(length, width)
    table[:, 0::2] = torch.sin(position * frequency)
    table[:, 1::2] = torch.cos(position * frequency)[:, : width // 2]
    return table


class Inputs(nn.Module):
    """Steps -> `width`-vectors: token ids embedded or float steps mapped linearly, a learned cls
    token put first for pooling=cls, positions added, dropout. One module, so gradient health
    reads it as the network's first layer."""

    def __init__(self, width, length, features, vocab_size, position, pooling, dropout):
        super().__init__()
        tokens = vocab_size is not None
        self.embed = nn.Embedding(vocab_size, width) if tokens else nn.Linear(features, width)
        steps = length + (pooling == "cls")
        self.cls = nn.Parameter(torch.zeros(1, 1, width)) if pooling == "cls" else None
        if position == "learned":
            self.position = nn.Parameter(torch.randn(1, steps, width) * 0.02)
        else:  # fixed: a buffer outside the state_dict, rebuilt from the shape
            self.register_buffer("position", sinusoidal(steps, width)[None], persistent=False)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x, mask):
        h = self.embed(x)
        if self.cls is not None:
            h = torch.cat([self.cls.expand(len(h), -1, -1), h], dim=1)
            if mask is not None:  # the cls token is always real
                mask = torch.cat([mask.new_ones(len(h), 1), mask], dim=1)
        return self.dropout(h + self.position[:, : h.shape[1]]), mask


class Transformer(nn.Module):
    """`depth` encoder blocks of model dimension `width` and `heads` attention heads.

    Inputs, by `input_shape` (one sample) and `vocab_size`:
    - float sequences (seq_len, features): each step mapped linearly to `width`; a flat sample
      (features,) is read as `features` steps of one value, as the RNN does;
    - token ids (seq_len,) when `vocab_size` is given: a LongTensor (batch, seq_len), embedded,
      or a dict {"input_ids", "attention_mask"} whose mask is True at real tokens: padding is
      left out of attention and of mean pooling, so it does not change the output.
    Positions are `learned` or `sinusoidal`, for up to seq_len steps. `pooling`: `cls` reads a
    learned token put before the sequence, `mean` averages the real steps. The blocks are
    `hidden` (step-wise training, freezing, t-SNE, gradient health), the output layer `head`.
    """

    def __init__(
        self,
        input_shape: int | Sequence[int],
        outputs: int,
        depth: int = 2,
        width: int = 64,
        heads: int = 4,
        ff_mult: int = 2,
        activation: str = "gelu",
        norm: str = "layer",
        norm_position: str = "pre",
        dropout: float = 0.0,
        position: str = "learned",
        pooling: str = "cls",
        vocab_size: int | None = None,
    ):
        super().__init__()
        shape = [input_shape] if isinstance(input_shape, int) else list(input_shape)
        if len(shape) not in (1, 2) or (vocab_size and len(shape) != 1):
            raise ConfigError("model", "Transformer", f"needs sequences, got samples of {shape}")
        if width % heads:
            raise ConfigError("model.heads", heads, f"must divide model.width={width}")
        self.length, self.pooling, self.tokens = shape[0], pooling, vocab_size is not None
        features = shape[1] if len(shape) == 2 else 1
        self.inputs = Inputs(width, self.length, features, vocab_size, position, pooling, dropout)
        pre = norm_position == "pre"
        self.hidden = nn.ModuleList(
            EncoderBlock(width, heads, ff_mult * width, activation, norm, pre, dropout)
            for _ in range(depth)
        )
        # Pre-norm leaves the residual stream unnormalised: one norm after the last block.
        self.norm = NORM_LAYERS[norm](width) if pre else nn.Identity()
        self.head = nn.Linear(width, outputs)

    def forward(self, x) -> torch.Tensor:
        mask = None  # True at real steps
        if isinstance(x, dict):
            x, mask = x["input_ids"], x.get("attention_mask")
            mask = mask.bool() if mask is not None else None
        if not self.tokens and x.dim() == 2:  # (batch, features): one value per step
            x = x.unsqueeze(-1)
        if x.shape[1] > self.length:
            raise ValueError(f"sequences of {x.shape[1]} steps; the model reads <= {self.length}")
        h, mask = self.inputs(x, mask)
        padding = ~mask if mask is not None else None  # torch's key padding mask: True = ignore
        for block in self.hidden:
            h = block(h, src_key_padding_mask=padding)
        h = self.norm(h)
        if self.pooling == "cls":
            pooled = h[:, 0]
        elif mask is None:
            pooled = h.mean(dim=1)
        else:
            weights = mask.unsqueeze(-1).to(h.dtype)
            pooled = (h * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1)
        return self.head(pooled)
