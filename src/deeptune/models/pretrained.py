"""Fine-tuning's start: a trained model's weights copied into a new network where they fit.

Tensors are copied where name and shape match; a head for another number of classes keeps
its fresh initialisation. The module gives the loaded hidden layers `finetune.lr_scale` times
the head's learning rate (TaskModule.configure_optimizers); freezing some of them for a while is
deeptune.callbacks.finetune.
"""

import logging
from pathlib import Path

from torch import nn

from deeptune import outputs
from deeptune.errors import ConfigError
from deeptune.trust import check_saved_config, read_checkpoint

log = logging.getLogger(__name__)


def source_model(ckpt: Path) -> str | None:
    """The model target of the run that wrote `ckpt`, from the config.yaml beside its
    checkpoints/ folder (None for a checkpoint from elsewhere). That folder is someone else's
    run: its config must pass deeptune.trust like any saved run's."""
    for folder in (ckpt.parent.parent, ckpt.parent):
        path = folder / outputs.RESOLVED_CONFIG
        if path.is_file():
            saved = outputs.read_yaml(path) or {}
            check_saved_config(saved, path)
            return (saved.get("model") or {}).get("_target_")
    return None


def load_pretrained(net: nn.Module, path: str) -> dict:
    """Copy the matching tensors of checkpoint `path` into `net`; {'loaded': [...], 'skipped'}."""
    source = source_model(Path(path))
    saved = read_checkpoint(path, "finetune.from")["state_dict"]
    saved = {k.removeprefix("net."): v for k, v in saved.items() if k.startswith("net.")}
    own = net.state_dict()
    loaded = [k for k, v in own.items() if k in saved and saved[k].shape == v.shape]
    skipped = [k for k in own if k not in loaded]
    if not loaded:
        made_by = f" (its run's model is {source})" if source else ""
        raise ConfigError(
            "finetune.from",
            str(path),
            f"none of its tensors fits this model{made_by}: fine-tune from a run of the same "
            "network (a new head for other classes is fine)",
        )
    net.load_state_dict({k: saved[k] for k in loaded}, strict=False)
    log.info("finetune: loaded %d tensors from %s; skipped %s", len(loaded), path, skipped)
    return {"from": str(path), "loaded": loaded, "skipped": skipped}
