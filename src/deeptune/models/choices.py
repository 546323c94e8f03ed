"""The model's named choices, kept free of torch so configs are checked before torch loads.

Each activation maps to (class path, width expansion): maxout and GEGLU take a wider linear
map and reduce it back to the layer width.
"""

ACTIVATIONS = {
    "relu": ("torch.nn.ReLU", 1),
    "leaky_relu": ("torch.nn.LeakyReLU", 1),
    "tanh": ("torch.nn.Tanh", 1),
    "sigmoid": ("torch.nn.Sigmoid", 1),
    "gelu": ("torch.nn.GELU", 1),
    "elu": ("torch.nn.ELU", 1),
    "selu": ("torch.nn.SELU", 1),
    "silu": ("torch.nn.SiLU", 1),
    "maxout": ("deeptune.models.layers.Maxout", None),  # expansion = maxout_pieces
    "geglu": ("deeptune.models.layers.GEGLU", 2),
}

NORMS = {
    "none": None,
    "batch": "torch.nn.BatchNorm1d",
    "layer": "torch.nn.LayerNorm",
}

# The CNN's (deeptune.models.cnn.conv_norm): layer norm over a feature map is GroupNorm(1, C).
CONV_NORMS = ("none", "batch", "layer", "group")
POOLS = ("max", "avg", "none")
# Activations that act elementwise; maxout and geglu reduce a widened linear map's last axis,
# which a convolution's output does not have (its channels are axis 1).
CONV_ACTIVATIONS = tuple(a for a in ACTIVATIONS if a not in ("maxout", "geglu"))

# The Transformer's (deeptune.models.transformer): feed-forward activations (geglu and swiglu
# gate half of a doubled linear map with the other), the norms, where they sit, the positions.
TRANSFORMER_ACTIVATIONS = ("relu", "gelu", "geglu", "swiglu")
TRANSFORMER_NORMS = ("layer", "rms")
NORM_POSITIONS = ("pre", "post")
POSITIONS = ("learned", "sinusoidal")
POOLINGS = ("cls", "mean")

INITS = (
    "default",
    "uniform",
    "normal",
    "scaled_normal",
    "xavier_uniform",
    "xavier_normal",
    "kaiming_uniform",
    "kaiming_normal",
    "orthogonal",
    "zeros",
)
