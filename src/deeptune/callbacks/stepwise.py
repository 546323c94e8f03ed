"""Step-wise training: hidden layers join training one stage at a time (Lightning's
BaseFinetuning freezes them before the first epoch and adds each to the optimiser later).

lower_first starts with hidden layer 0 and the head, then unfreezes layer 1, 2, ... every
`every` epochs; top_first starts with the last hidden layer and works down.
"""

import logging

from lightning.pytorch.callbacks import BaseFinetuning

log = logging.getLogger(__name__)


class StepwiseUnfreeze(BaseFinetuning):
    def __init__(self, strategy: str = "lower_first", every: int = 2):
        super().__init__()
        self.strategy, self.every = strategy, every
        self.plan: list[dict] = []  # {epoch, layers}: what becomes trainable when
        self.epochs_started = 0

    def _order(self, pl_module) -> list[int]:
        order = list(range(len(pl_module.net.hidden)))
        return order if self.strategy == "lower_first" else order[::-1]

    def freeze_before_training(self, pl_module) -> None:
        order = self._order(pl_module)
        # train_bn=False: a frozen layer's batch-norm statistics stay fixed too.
        self.freeze([pl_module.net.hidden[i] for i in order[1:]], train_bn=False)
        self.plan = [{"epoch": s * self.every, "layers": [i]} for s, i in enumerate(order)]

    def finetune_function(self, pl_module, epoch: int, optimizer) -> None:
        order, stage = self._order(pl_module), epoch // self.every
        self.epochs_started = epoch + 1
        if epoch > 0 and epoch % self.every == 0 and stage < len(order):
            layer = order[stage]
            # Same learning rate as the layers already training (initial_denom_lr=1).
            self.unfreeze_and_add_param_group(
                pl_module.net.hidden[layer], optimizer, initial_denom_lr=1.0
            )
            log.info("stepwise: epoch %d unfreezes hidden layer %d", epoch, layer)
        trainable = sum(
            all(p.requires_grad for p in block.parameters()) for block in pl_module.net.hidden
        )
        pl_module.log("stepwise/trainable_layers", float(trainable))

    def report(self) -> dict:
        # The plan up to the last epoch trained (a resumed run included): layers that unfroze.
        done = [stage for stage in self.plan if stage["epoch"] < self.epochs_started]
        return {"stepwise": {"strategy": self.strategy, "every": self.every, "schedule": done}}


def stepwise_unfreeze(strategy: str = "none", every: int = 2) -> StepwiseUnfreeze | None:
    """The callback of `stepwise.strategy` (configs/train.yaml), or None for `none`."""
    return None if strategy == "none" else StepwiseUnfreeze(strategy, every)
