"""L-BFGS with weight decay, so `optimizer.weight_decay` means the same for every optimiser."""

import torch


class LBFGS(torch.optim.LBFGS):
    """torch.optim.LBFGS has no weight_decay: add the L2 term to the loss its closure returns.

    The term 0.5 * wd * ||w||^2 adds wd * w to every gradient, which is what SGD's
    weight_decay does, and the line search sees the penalised loss.
    """

    def __init__(self, params, lr: float = 1.0, weight_decay: float = 0.0, **kwargs):
        super().__init__(params, lr=lr, **kwargs)
        self.weight_decay = weight_decay

    def step(self, closure):
        if not self.weight_decay:
            return super().step(closure)
        params = [p for group in self.param_groups for p in group["params"]]

        def penalised():
            loss = closure()
            with torch.no_grad():
                penalty = sum(p.pow(2).sum() for p in params)
                for p in params:
                    if p.grad is not None:
                        p.grad.add_(p, alpha=self.weight_decay)
            return loss + 0.5 * self.weight_decay * penalty

        return super().step(penalised)
