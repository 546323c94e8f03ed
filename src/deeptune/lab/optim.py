"""Lab-only optimiser knob: the linear learning-rate scaling rule for batch-size experiments."""

from hydra.utils import get_class


def batch_scaled(
    params,
    optimizer: str = "torch.optim.SGD",
    lr: float = 0.05,
    batch_size: int = 64,
    base_batch_size: int = 64,
    lr_scaling: str = "none",
    **kwargs,
):
    """`optimizer` (a class path) with lr, or with `lr_scaling=linear` lr * batch_size /
    base_batch_size (Goyal et al., 2017: the linear scaling rule)."""
    if lr_scaling not in ("none", "linear"):
        raise ValueError(f"optimizer.lr_scaling={lr_scaling!r}: must be none or linear")
    if lr_scaling == "linear":
        lr = lr * batch_size / base_batch_size
    return get_class(optimizer)(params, lr=lr, **kwargs)
