"""Fine-tuning's start: a trained model's weights copied into a new network where they fit.

Tensors are copied where name and shape match; a head for another number of classes keeps
its fresh initialisation. The module gives the loaded hidden layers `finetune.lr_scale` times
the head's learning rate (TaskModule.configure_optimizers); freezing some of them for a while is
deeptune.callbacks.finetune.
"""

import logging

import torch
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
