"""Learning-rate schedules that torch.optim.lr_scheduler does not offer as one class."""

from torch.optim import Optimizer
from torch.optim.lr_scheduler import (
    ConstantLR,
    CosineAnnealingLR,
    LambdaLR,
    LinearLR,
    SequentialLR,
)


class _TwoStageFactor:
    """gamma**epoch until `switch_epoch`, then gamma_after per epoch (picklable for checkpoints)."""

    def __init__(self, gamma: float, gamma_after: float, switch_epoch: int):
        self.gamma, self.gamma_after, self.switch_epoch = gamma, gamma_after, switch_epoch

    def __call__(self, epoch: int) -> float:
        first = min(epoch, self.switch_epoch)
        return self.gamma**first * self.gamma_after ** max(0, epoch - self.switch_epoch)


def two_stage_exponential(
    optimizer: Optimizer, gamma: float = 0.95, gamma_after: float = 0.8, switch_epoch: int = 10
) -> LambdaLR:
    """Exponential decay whose rate changes at `switch_epoch`.

    SequentialLR of two ExponentialLR would restart the second at the base rate; this keeps
    the curve continuous.
    """
    return LambdaLR(optimizer, _TwoStageFactor(gamma, gamma_after, switch_epoch))


def warmup(
    optimizer: Optimizer,
    warmup_epochs: int = 5,
    start_factor: float = 0.1,
    then: str = "cosine",
    max_epochs: int = 30,
    eta_min: float = 0.0,
) -> SequentialLR:
    """Linear warm-up from `start_factor` x lr, then cosine annealing or a constant rate."""
    ramp = LinearLR(optimizer, start_factor=start_factor, total_iters=warmup_epochs)
    if then == "cosine":
        after = CosineAnnealingLR(
            optimizer, T_max=max(1, max_epochs - warmup_epochs), eta_min=eta_min
        )
    else:
        after = ConstantLR(optimizer, factor=1.0, total_iters=0)
    return SequentialLR(optimizer, [ramp, after], milestones=[warmup_epochs])
