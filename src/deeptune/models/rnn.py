"""A recurrent network: a stack of RNN / LSTM / GRU layers read at the last step, then a linear
head."""

import logging
from collections.abc import Sequence

import torch
from torch import nn

log = logging.getLogger(__name__)

CELLS = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}  # config.RULES["model.cell"] too


class RNN(nn.Module):
    """`layers` recurrent layers of `hidden` units; the head reads the last layer's final state.

    `input_shape` is one sample's shape: (seq_len, features) for a sequence. A flat sample
    (features,) is read as a sequence of `features` steps of one value each (e.g. the digits
    pixel by pixel, "sequential digits"). `cell`: rnn (Elman, tanh), lstm or gru. With
    `bidirectional` a second stack reads the sequence backwards and the head sees both final
    states. `dropout` acts between recurrent layers (torch's own), so it needs layers >= 2.

    The names matter: `rnn` is the torch recurrent module (parameters rnn.weight_ih_l<k> belong
    to layer k) and `head` the output layer, as in the MLP.
    """

    def __init__(
        self,
        input_shape: int | Sequence[int],
        outputs: int,
        cell: str = "lstm",
        hidden: int = 64,
        layers: int = 1,
        bidirectional: bool = False,
        dropout: float = 0.0,
    ):
        super().__init__()
        if cell not in CELLS:
            raise ValueError(f"model.cell={cell!r}: must be one of {', '.join(CELLS)}")
        shape = (input_shape,) if isinstance(input_shape, int) else tuple(input_shape)
        features = shape[1] if len(shape) == 2 else 1
        if dropout > 0 and layers == 1:
            log.warning("model.dropout=%s does nothing with model.layers=1", dropout)
        kwargs = {"nonlinearity": "tanh"} if cell == "rnn" else {}
        self.rnn = CELLS[cell](
            features,
            hidden,
            num_layers=layers,
            bidirectional=bidirectional,
            dropout=dropout if layers > 1 else 0.0,  # torch warns about it for one layer
            batch_first=True,
            **kwargs,
        )
        self.directions = 2 if bidirectional else 1
        self.head = nn.Linear(hidden * self.directions, outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 2:  # (batch, features): one value per step
            x = x.unsqueeze(-1)
        _, state = self.rnn(x)
        h = state[0] if isinstance(state, tuple) else state  # an LSTM's state is (h, c)
        # h: (layers * directions, batch, hidden); the last layer's final state per direction,
        # i.e. the forward pass at the last step and the backward pass at the first.
        last = h[-self.directions :].transpose(0, 1).reshape(x.shape[0], -1)
        return self.head(last)
