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
