"""Fine-tuning: start from a trained model's weights, freeze some hidden layers for a while.

Tensors are copied where name and shape match; a head for another number of classes keeps
its fresh initialisation. The Classifier gives the loaded hidden layers `lr_scale` times the
head's learning rate (see Classifier.configure_optimizers).
"""

import logging

import torch
from lightning.pytorch.callbacks import BaseFinetuning
from torch import nn

log = logging.getLogger(__name__)


def load_pretrained(net: nn.Module, path: str) -> dict:
    """Copy the matching tensors of checkpoint `path` into `net`; {'loaded': [...], 'skipped'}."""
    saved = torch.load(path, map_location="cpu", weights_only=True)["state_dict"]
    saved = {k.removeprefix("net."): v for k, v in saved.items() if k.startswith("net.")}
    own = net.state_dict()
    loaded = [k for k, v in own.items() if k in saved and saved[k].shape == v.shape]
    skipped = [k for k in own if k not in loaded]
    net.load_state_dict({k: saved[k] for k in loaded}, strict=False)
    log.info("finetune: loaded %d tensors from %s; skipped %s", len(loaded), path, skipped)
    return {"from": str(path), "loaded": loaded, "skipped": skipped}


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
