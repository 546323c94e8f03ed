"""Fine-tuning's start: a trained model's weights copied into a new network where they fit.

A layer (the module that owns the tensors: `hidden.0.linear`, `head`, ...) is copied only when
every one of its tensors is in the checkpoint with the same shape: half a layer (a bias without
its weight, when the data has another width) would be neither pretrained nor fresh. A head for
another number of classes keeps its fresh initialisation. The module gives the loaded hidden
layers `finetune.lr_scale` times the head's learning rate (TaskModule.configure_optimizers);
freezing some of them for a while is deeptune.callbacks.finetune, and only loaded ones may be.
"""

import logging
from collections import defaultdict
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


def _layer(tensor: str) -> str:
    """The module owning a state-dict entry: `hidden.0.linear.weight` -> `hidden.0.linear`."""
    return tensor.rpartition(".")[0] or tensor


def _misfit(name: str, own, saved: dict) -> str | None:
    """Why tensor `name` of this network cannot take the checkpoint's, or None if it can."""
    if name not in saved:
        return f"{name} is not in the checkpoint"
    if saved[name].shape != own.shape:
        return f"{name} is {tuple(saved[name].shape)} there, {tuple(own.shape)} here"
    return None


def load_pretrained(net: nn.Module, path: str) -> dict:
    """Copy the layers of checkpoint `path` whose tensors all fit into `net`.

    Returns {'from', 'loaded': tensor names, 'skipped': tensor names, 'skipped_layers': {layer:
    why}} for metrics.json's `finetune` entry."""
    source = source_model(Path(path))
    saved = read_checkpoint(path, "finetune.from")["state_dict"]
    saved = {k.removeprefix("net."): v for k, v in saved.items() if k.startswith("net.")}
    layers: dict[str, list[str]] = defaultdict(list)
    for name in net.state_dict():
        layers[_layer(name)].append(name)
    own = net.state_dict()
    loaded, skipped_layers = [], {}
    for layer, names in layers.items():
        why = [w for n in names if (w := _misfit(n, own[n], saved))]
        if why:
            skipped_layers[layer] = "; ".join(why)
        else:
            loaded += names
    if not loaded:
        made_by = f" (its run's model is {source})" if source else ""
        raise ConfigError(
            "finetune.from",
            str(path),
            f"none of its tensors fits this model{made_by}: fine-tune from a run of the same "
            "network (a new head for other classes is fine)",
        )
    net.load_state_dict({k: saved[k] for k in loaded}, strict=False)
    # A new head is expected (other classes); a hidden layer left fresh is worth a warning.
    level = logging.WARNING if set(skipped_layers) - {"head"} else logging.INFO
    fresh = "; ".join(f"{layer} ({why})" for layer, why in skipped_layers.items()) or "none"
    log.log(level, "finetune: loaded %d tensors from %s; kept fresh: %s", len(loaded), path, fresh)
    skipped = [k for k in own if k not in loaded]
    return {
        "from": str(path),
        "loaded": loaded,
        "skipped": skipped,
        "skipped_layers": skipped_layers,
    }


def _hidden_index(layer: str) -> int | None:
    parts = layer.split(".")
    return int(parts[1]) if parts[0] == "hidden" and len(parts) > 1 and parts[1].isdigit() else None


def check_frozen_were_loaded(freeze: list[int], report: dict) -> None:
    """`finetune.freeze` with `finetune.from` keeps pretrained features: freezing a hidden layer
    that kept its fresh initialisation (its tensors did not fit) would freeze random weights
    while the user believes they are pretrained."""
    fresh = {_hidden_index(layer) for layer in report["skipped_layers"]}
    refused = [i for i in freeze if i in fresh]
    if not refused:
        return
    why = "; ".join(
        why for layer, why in report["skipped_layers"].items() if _hidden_index(layer) in refused
    )
    loaded = sorted(
        {_hidden_index(n.rpartition(".")[0]) for n in report["loaded"]} - fresh - {None}
    )
    raise ConfigError(
        "finetune.freeze",
        list(freeze),
        f"hidden layer {', '.join(map(str, refused))} was not loaded from {report['from']} "
        f"({why}): frozen, it would stay at random; freeze only loaded layers "
        f"(here {loaded}), or leave it out of finetune.freeze",
    )
