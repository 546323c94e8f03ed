"""The schema of configs/model/*.yaml: the arguments of the networks, checked before torch loads.

`input_shape` and `outputs` are not config keys: the data set gives them when the net is built.
"""

from typing import ClassVar, Literal

from deeptune.errors import ConfigError
from deeptune.models.choices import ACTIVATIONS, INITS, NORMS
from deeptune.schema import Int, Node, Probability, schema

MAX_PARAMETERS = 2**31  # 8 GiB of float32 weights between hidden layers: a typo, not a model

Activation = Literal[tuple(ACTIVATIONS)]
Norm = Literal[tuple(NORMS)]
Init = Literal[INITS]
Width = Int(ge=1, le=2**20)


class NetNode(Node):
    """What every network takes from the builder rather than in its signature."""

    # torch.compile on the network (not the LightningModule) for training: TaskModule.setup
    compile: bool = None
    BUILDER_KEYS: ClassVar[tuple[str, ...]] = ("compile",)


@schema("deeptune.models.mlp.MLP")
class MLPNode(NetNode):
    depth: Int(ge=1, le=10_000) = None
    width: Width | list[Width] = None
    activation: Activation = None
    norm: Norm = None
    init: Init = None
    dropout: Probability = None
    residual: bool = None
    maxout_pieces: Int(ge=2, le=64) = None

    def check(self, key: str) -> None:
        depth = self.depth if self.depth is not None else 2
        width = self.width if self.width is not None else 128
        if isinstance(width, list) and len(width) != depth:
            raise ConfigError(
                f"{key}.width",
                width,
                f"a list of widths needs one entry per hidden layer ({key}.depth={depth})",
            )
        widths = width if isinstance(width, list) else [width] * depth
        parameters = sum(a * b for a, b in zip(widths[:-1], widths[1:], strict=True))
        if parameters > MAX_PARAMETERS:
            raise ConfigError(
                f"{key}.width",
                width,
                f"the hidden layers alone would hold {parameters:.2g} weights ({key}.depth="
                f"{depth}); at most {MAX_PARAMETERS:.2g}",
            )


@schema("deeptune.models.rnn.RNN")
class RNNNode(NetNode):
    cell: Literal["rnn", "lstm", "gru"] = None  # deeptune.models.rnn.CELLS
    hidden: Int(ge=1, le=2**16) = None
    layers: Int(ge=1, le=1000) = None
    bidirectional: bool = None
    dropout: Probability = None
