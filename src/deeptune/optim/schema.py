"""The schema of configs/optimizer/*.yaml and configs/scheduler/*.yaml: torch.optim's and
torch.optim.lr_scheduler's arguments (every one, so a mistyped key fails before torch loads)
and deeptune's own L-BFGS and schedules."""

from typing import Literal

from deeptune.errors import ConfigError
from deeptune.schema import Float, Int, Node, NonNegFloat, NonNegInt, PosFloat, PosInt, schema

Beta = Float(ge=0, lt=1)
Epoch = Int(ge=-1)  # torch's last_epoch: -1 starts the schedule afresh


class OptimizerNode(Node):
    lr: PosFloat = None
    weight_decay: NonNegFloat = None
    maximize: bool = None
    foreach: bool | None = None
    differentiable: bool = None


@schema("torch.optim.SGD")
class SGDNode(OptimizerNode):
    momentum: Beta = None
    dampening: Float(ge=0, le=1) = None
    nesterov: bool = None
    fused: bool | Literal["auto"] | None = None  # auto: deeptune.optim.fused

    def check(self, key: str) -> None:
        if self.nesterov and not (self.momentum or 0) > 0:
            raise ConfigError(f"{key}.nesterov", True, f"needs {key}.momentum > 0")


@schema("torch.optim.AdamW")
class AdamWNode(OptimizerNode):
    betas: list[Beta] = None
    eps: PosFloat = None
    amsgrad: bool = None
    capturable: bool = None
    fused: bool | Literal["auto"] | None = None  # auto: deeptune.optim.fused

    def check(self, key: str) -> None:
        if self.betas is not None and len(self.betas) != 2:
            raise ConfigError(f"{key}.betas", self.betas, "must be two numbers in [0, 1)")


@schema("torch.optim.Adam")
class AdamNode(AdamWNode):
    decoupled_weight_decay: bool = None  # AdamW is Adam with this set


@schema("torch.optim.Adagrad")
class AdagradNode(OptimizerNode):
    lr_decay: NonNegFloat = None
    initial_accumulator_value: NonNegFloat = None
    eps: PosFloat = None
    fused: bool | Literal["auto"] | None = None  # auto: deeptune.optim.fused


@schema("torch.optim.RMSprop")
class RMSpropNode(OptimizerNode):
    alpha: Beta = None
    eps: PosFloat = None
    momentum: Beta = None
    centered: bool = None
    capturable: bool = None


# Optimisers whose step re-evaluates the loss through a closure, many times per batch.
CLOSURE_OPTIMIZERS = {"deeptune.optim.lbfgs.LBFGS", "torch.optim.LBFGS", "torch.optim.lbfgs.LBFGS"}


@schema("deeptune.optim.lbfgs.LBFGS")
class LBFGSNode(Node):
    lr: PosFloat = None
    weight_decay: NonNegFloat = None
    max_iter: PosInt = None
    max_eval: PosInt | None = None
    tolerance_grad: NonNegFloat = None
    tolerance_change: NonNegFloat = None
    history_size: PosInt = None
    line_search_fn: Literal["strong_wolfe"] | None = None


@schema("torch.optim.lr_scheduler.CosineAnnealingLR")
class CosineNode(Node):
    T_max: PosInt = None  # noqa: N815 (torch's name)
    eta_min: NonNegFloat = None
    last_epoch: Epoch = None


@schema("torch.optim.lr_scheduler.ExponentialLR")
class ExponentialNode(Node):
    gamma: Float(gt=0, le=1) = None
    last_epoch: Epoch = None


@schema("torch.optim.lr_scheduler.StepLR")
class StepNode(ExponentialNode):
    step_size: PosInt = None


@schema("torch.optim.lr_scheduler.ReduceLROnPlateau")
class PlateauNode(Node):
    mode: Literal["min", "max"] = None
    factor: Float(gt=0, lt=1) = None
    patience: NonNegInt = None
    threshold: NonNegFloat = None
    threshold_mode: Literal["rel", "abs"] = None
    cooldown: NonNegInt = None
    min_lr: NonNegFloat | list[NonNegFloat] = None
    eps: NonNegFloat = None

    def check(self, key: str) -> None:
        # The modules hand the schedule val/loss (deeptune.models.module): lower is better.
        if self.mode == "max":
            raise ConfigError(
                f"{key}.mode", "max", "the schedule watches val/loss, which falls: use min"
            )


@schema("deeptune.optim.schedulers.two_stage_exponential")
class TwoStageNode(Node):
    gamma: Float(gt=0, le=1) = None
    gamma_after: Float(gt=0, le=1) = None
    switch_epoch: NonNegInt = None


@schema("deeptune.optim.schedulers.warmup")
class WarmupNode(Node):
    warmup_epochs: PosInt = None
    start_factor: Float(gt=0, le=1) = None
    then: Literal["cosine", "constant"] = None
    max_epochs: PosInt = None
    eta_min: NonNegFloat = None
