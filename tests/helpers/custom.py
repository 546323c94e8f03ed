"""A user's own network, outside deeptune: a `_target_` deeptune's allow-list does not hold."""

import math

from torch import nn


class TinyNet(nn.Module):
    def __init__(self, input_shape, outputs, width: int = 16):
        super().__init__()
        self.head = nn.Sequential(
            nn.Flatten(),
            nn.Linear(math.prod(input_shape), width),
            nn.ReLU(),
            nn.Linear(width, outputs),
        )

    def forward(self, x):
        return self.head(x)


class BlockNet(nn.Module):
    """A user's network with blocks in `hidden`: step-wise training and freezing work on it."""

    def __init__(self, input_shape, outputs, blocks: int = 3, width: int = 16):
        super().__init__()
        sizes = [math.prod(input_shape), *[width] * blocks]
        self.hidden = nn.ModuleList(
            nn.Sequential(nn.Linear(a, b), nn.ReLU())
            for a, b in zip(sizes[:-1], sizes[1:], strict=True)
        )
        self.head = nn.Linear(width, outputs)

    def forward(self, x):
        x = x.flatten(1)
        for block in self.hidden:
            x = block(x)
        return self.head(x)
