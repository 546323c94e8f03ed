"""A configurable convolutional network for images (channels, height, width)."""

from collections.abc import Sequence

from hydra.utils import get_class
from torch import nn

from deeptune.errors import ConfigError
from deeptune.models.choices import ACTIVATIONS
from deeptune.models.init import init_linear

POOL_LAYERS = {"max": nn.MaxPool2d, "avg": nn.AvgPool2d}  # 2 x 2, stride 2: halves height and width


def conv_norm(norm: str, channels: int, groups: int) -> nn.Module:
    """batch: BatchNorm2d; layer: one group over channels and pixels (GroupNorm(1, C), layer norm
    for feature maps with a per-channel affine); group: GroupNorm(groups, C)."""
    if norm == "none":
        return nn.Identity()
    if norm == "batch":
        return nn.BatchNorm2d(channels)
    return nn.GroupNorm(1 if norm == "layer" else groups, channels)


class ConvBlock(nn.Module):
    """conv -> norm -> activation; with `residual` a ResNet basic block: conv -> norm ->
    activation -> conv -> norm, plus the input (through a 1 x 1 convolution when the channels
    change), then the activation. Then the optional 2 x 2 pooling and dropout."""

    def __init__(self, c_in, c_out, kernel, activation, norm, groups, dropout, residual, pool):
        super().__init__()
        bias = norm == "none"  # a norm's shift makes the convolution's bias redundant
        self.residual = residual
        self.conv1 = nn.Conv2d(c_in, c_out, kernel, padding="same", bias=bias)
        self.norm1 = conv_norm(norm, c_out, groups)
        self.act = get_class(ACTIVATIONS[activation][0])()
        if residual:
            self.conv2 = nn.Conv2d(c_out, c_out, kernel, padding="same", bias=bias)
            self.norm2 = conv_norm(norm, c_out, groups)
            # A projection shortcut (ResNet's option B) where the identity would not fit.
            self.shortcut = (
                nn.Sequential(nn.Conv2d(c_in, c_out, 1, bias=bias), conv_norm(norm, c_out, groups))
                if c_in != c_out
                else nn.Identity()
            )
        self.pool = POOL_LAYERS[pool](2) if pool else nn.Identity()
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()

    def forward(self, x):
        h = self.norm1(self.conv1(x))
        if self.residual:
            h = self.norm2(self.conv2(self.act(h))) + self.shortcut(x)
        return self.dropout(self.pool(self.act(h)))


class CNN(nn.Module):
    """`depth` convolutional blocks of `width` channels (or one width per block), global average
    pooling, then a linear head.

    `input_shape` is one image's (channels, height, width). Every `pool_every`-th block ends in a
    2 x 2 `pool` (max or avg) while its feature map is at least 2 x 2, so a deep net on small
    images keeps its last blocks at 1 x 1 rather than failing. `outputs`: one per class, or 1 for
    regression. The blocks are `hidden` (step-wise training, freezing, t-SNE and gradient health
    read them), the output layer `head`, as in the MLP.
    """

    def __init__(
        self,
        input_shape: Sequence[int],
        outputs: int,
        depth: int = 3,
        width: int | Sequence[int] = 64,
        kernel: int = 3,
        pool: str = "max",
        pool_every: int = 1,
        activation: str = "relu",
        norm: str = "batch",
        groups: int = 8,
        init: str = "kaiming_normal",
        dropout: float = 0.1,
        residual: bool = False,
    ):
        super().__init__()
        shape = [input_shape] if isinstance(input_shape, int) else list(input_shape)
        if len(shape) != 3:  # deeptune.config checks the data first; this guards direct use
            raise ConfigError("model", "CNN", f"needs (channels, height, width), got {shape}")
        widths = [width] * depth if isinstance(width, int) else list(width)
        if len(widths) != depth:
            raise ValueError(f"model.width lists {len(widths)} widths but model.depth={depth}")
        channels, height, size = [shape[0], *widths], shape[1], shape[2]
        blocks = []
        for i, (c_in, c_out) in enumerate(zip(channels[:-1], channels[1:], strict=True)):
            pools = pool != "none" and (i + 1) % pool_every == 0 and min(height, size) >= 2
            height, size = (height // 2, size // 2) if pools else (height, size)
            blocks.append(
                ConvBlock(
                    c_in,
                    c_out,
                    kernel,
                    activation,
                    norm,
                    groups,
                    dropout,
                    residual,
                    pool if pools else None,
                )
            )
        self.hidden = nn.ModuleList(blocks)
        self.head = nn.Linear(widths[-1], outputs)
        for block in self.hidden:
            init_linear(block.conv1, init, activation)
            if residual:
                init_linear(block.conv2, init, activation)
                if not isinstance(block.shortcut, nn.Identity):
                    init_linear(block.shortcut[0], init, "linear")
        init_linear(self.head, init, "linear")

    def forward(self, x):
        for block in self.hidden:
            x = block(x)
        return self.head(x.mean(dim=(2, 3)))  # global average pooling: (b, C, H, W) -> (b, C)
