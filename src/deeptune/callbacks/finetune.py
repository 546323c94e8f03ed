"""Fine-tuning's frozen layers: hidden layers kept frozen for a number of epochs, then trained at
`lr_scale` times the head's rate. Loading the pretrained weights is deeptune.models.pretrained."""

import logging

from lightning.pytorch.callbacks import BaseFinetuning
from torch import nn

log = logging.getLogger(__name__)


class FreezeLayers(BaseFinetuning):
    """Hidden layers `layers` frozen for `epochs` epochs (None: the whole run)."""

    def __init__(self, layers: list[int], epochs: int | None, lr_scale: float):
        super().__init__()
        self.layers, self.epochs, self.lr_scale = list(layers), epochs, lr_scale

    def _modules(self, pl_module) -> list[nn.Module]:
        return [pl_module.net.hidden[i] for i in self.layers]

    def freeze_before_training(self, pl_module) -> None:
        self.freeze(self._modules(pl_module), train_bn=False)

    def finetune_function(self, pl_module, epoch: int, optimizer) -> None:
        if epoch == self.epochs:
            # Group 0 holds the head: pretrained layers learn at lr_scale times its rate.
            lr = optimizer.param_groups[0]["lr"] * self.lr_scale
            self.unfreeze_and_add_param_group(self._modules(pl_module), optimizer, lr=lr)
            log.info("finetune: epoch %d unfreezes hidden layers %s", epoch, self.layers)

    def report(self) -> dict:
        return {"finetune": {"freeze": self.layers, "freeze_epochs": self.epochs}}


def freeze_layers(
    layers: list[int] = (), epochs: int | None = None, lr_scale: float = 1.0
) -> FreezeLayers | None:
    """The callback of `finetune.freeze` (configs/train.yaml), or None when nothing is frozen."""
    return FreezeLayers(layers, epochs, lr_scale) if layers else None
