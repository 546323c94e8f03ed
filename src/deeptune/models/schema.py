"""The schema of configs/model/*.yaml: the arguments of the networks, checked before torch loads.

`input_shape` and `outputs` are not config keys: the data set gives them when the net is built.
"""

from typing import ClassVar, Literal

from deeptune.errors import ConfigError
from deeptune.models.choices import (
    ACTIVATIONS,
    CONV_ACTIVATIONS,
    CONV_NORMS,
    INITS,
    NORM_POSITIONS,
    NORMS,
    POOLINGS,
    POOLS,
    POSITIONS,
    TRANSFORMER_ACTIVATIONS,
    TRANSFORMER_NORMS,
)
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
    # The ranks of one sample (input_shape) the network reads, None: any; checked against the
    # data set by deeptune.config.validate_against_data, with INPUT_HINT as the way out.
    INPUT_RANKS: ClassVar[tuple[int, ...] | None] = None
    INPUT_HINT: ClassVar[str] = ""


def _widths(key: str, depth: int, width) -> list[int]:
    """One width per block, or the ConfigError of a list that does not match `depth`."""
    if isinstance(width, list) and len(width) != depth:
        raise ConfigError(
            f"{key}.width",
            width,
            f"a list of widths needs one entry per hidden layer ({key}.depth={depth})",
        )
    return width if isinstance(width, list) else [width] * depth


def _check_size(key: str, width, depth: int, parameters: int) -> None:
    if parameters > MAX_PARAMETERS:
        raise ConfigError(
            f"{key}.width",
            width,
            f"the hidden layers alone would hold {parameters:.2g} weights ({key}.depth="
            f"{depth}); at most {MAX_PARAMETERS:.2g}",
        )


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
        widths = _widths(key, depth, width)
        parameters = sum(a * b for a, b in zip(widths[:-1], widths[1:], strict=True))
        _check_size(key, width, depth, parameters)


@schema("deeptune.models.cnn.CNN")
class CNNNode(NetNode):
    depth: Int(ge=1, le=1000) = None
    width: Width | list[Width] = None  # channels per block
    kernel: Int(ge=1, le=31) = None
    pool: Literal[POOLS] = None
    pool_every: Int(ge=1, le=1000) = None
    activation: Activation = None
    norm: Literal[CONV_NORMS] = None
    groups: Int(ge=1, le=2**16) = None
    init: Init = None
    dropout: Probability = None
    residual: bool = None
    INPUT_RANKS: ClassVar = (3,)
    INPUT_HINT: ClassVar = (
        "images of shape (channels, height, width): use data=digits_images, or an .npz whose "
        "x is (n, C, H, W)"
    )

    def check(self, key: str) -> None:
        if self.activation is not None and self.activation not in CONV_ACTIVATIONS:
            raise ConfigError(
                f"{key}.activation",
                self.activation,
                f"{self.activation} widens an MLP's linear map and has no convolutional form "
                f"here: use one of {', '.join(CONV_ACTIVATIONS)}",
            )
        depth = self.depth if self.depth is not None else 3
        width = self.width if self.width is not None else 64
        widths = _widths(key, depth, width)
        if self.norm == "group":
            groups = self.groups if self.groups is not None else 8
            if bad := [w for w in widths if w % groups]:
                raise ConfigError(
                    f"{key}.groups",
                    groups,
                    f"norm=group splits each block's channels into groups: {key}.width "
                    f"{bad[0]} is not a multiple of it",
                )
        kernel = self.kernel if self.kernel is not None else 3
        parameters = sum(a * b * kernel**2 for a, b in zip(widths[:-1], widths[1:], strict=True))
        _check_size(key, width, depth, parameters)


@schema("deeptune.models.transformer.Transformer")
class TransformerNode(NetNode):
    depth: Int(ge=1, le=1000) = None
    width: Int(ge=1, le=2**16) = None  # the model dimension
    heads: Int(ge=1, le=1024) = None
    ff_mult: Int(ge=1, le=64) = None  # feed-forward width = ff_mult * width
    activation: Literal[TRANSFORMER_ACTIVATIONS] = None
    norm: Literal[TRANSFORMER_NORMS] = None
    norm_position: Literal[NORM_POSITIONS] = None
    dropout: Probability = None
    position: Literal[POSITIONS] = None
    pooling: Literal[POOLINGS] = None
    INPUT_RANKS: ClassVar = (1, 2)
    INPUT_HINT: ClassVar = (
        "sequences (seq_len, features), a flat table (read as one value per step) or token ids: "
        "use e.g. data=temporal_order, data=adding or data=digits"
    )

    def check(self, key: str) -> None:
        width = self.width if self.width is not None else 64
        heads = self.heads if self.heads is not None else 4
        if width % heads:
            raise ConfigError(
                f"{key}.heads",
                heads,
                f"must divide {key}.width={width}: each head attends in width / heads dimensions",
            )
        depth = self.depth if self.depth is not None else 2
        ff = self.ff_mult if self.ff_mult is not None else 2
        _check_size(key, width, depth, depth * (4 + 3 * ff) * width**2)


@schema("deeptune.models.rnn.RNN")
class RNNNode(NetNode):
    cell: Literal["rnn", "lstm", "gru"] = None  # deeptune.models.rnn.CELLS
    hidden: Int(ge=1, le=2**16) = None
    layers: Int(ge=1, le=1000) = None
    bidirectional: bool = None
    dropout: Probability = None


# Networks known to keep their `depth` blocks in net.hidden (stepwise and freeze work on
# net.hidden[i]), so those are checked against model.depth before anything is built; a network
# of the user's is checked once built (deeptune.config.validate_against_model).
HIDDEN_LAYER_MODELS = {
    "deeptune.models.mlp.MLP",
    "deeptune.models.cnn.CNN",
    "deeptune.models.transformer.Transformer",
}
