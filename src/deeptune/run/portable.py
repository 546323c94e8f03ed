"""Checkpoints that describe themselves: what a model needs to predict, copied into the file.

Every checkpoint train.py writes holds, under `deeptune`, the resolved config, the task, the
class labels in the network's output order, the feature names, one sample's shape, the training
split's scaler (mean and std, or None) and the provenance (deeptune.provenance). All plain
values, so torch.load(weights_only=True) reads them (deeptune.trust.read_checkpoint).

`load_module` rebuilds the LightningModule from the file alone; a checkpoint written before
this state existed is rebuilt through its run folder (deeptune.run.saved.load_run).
"""

from pathlib import Path
from types import SimpleNamespace

from omegaconf import DictConfig, OmegaConf

KEY = "deeptune"
VERSION = 1


def describe(cfg: DictConfig, datamodule) -> dict:
    """The `deeptune` entry of a checkpoint of a model trained on `datamodule`. A component
    data module (deeptune.data.component) adds `datamodule`: its fitted state (Lightning's
    `state_dict()`: plain values), which `deeptune.load(ckpt).predict(raw)` restores into a
    module rebuilt from the config to call its `predict_inputs(raw)`."""
    from deeptune import provenance
    from deeptune.builders import class_names
    from deeptune.data.component import contract

    table = getattr(datamodule, "table", None)  # the tensor path's
    source = cfg.data.get("source") or {}
    spec = contract(datamodule)
    if table is not None:
        features, scaler, component = table.feature_names, datamodule.scaler, None
    else:
        names = spec.feature_names
        features, scaler = list(names) if names is not None else None, None
        component = {"state": datamodule.state_dict()}
    return {
        "version": VERSION,
        "config": OmegaConf.to_container(cfg, resolve=True),
        "task": spec.task,
        "classes": class_names(spec),
        "features": features,
        "input_shape": [int(d) for d in spec.input_shape],
        "vocab_size": getattr(spec, "vocab_size", None),
        "target": source.get("target"),  # a CSV's label column: not a feature when predicting
        "scaler": scaler,
        "datamodule": component,
        "provenance": provenance.collect(),
    }


def load_module(path: Path, key: str = "ckpt_path", strict: bool = True):
    """The LightningModule of a checkpoint, in eval mode on the CPU, its `deeptune_state` set."""
    from deeptune import trust

    path = Path(path).expanduser()
    if not path.is_file():
        from deeptune.errors import ConfigError

        raise ConfigError(key, str(path), "no such file")
    checkpoint = trust.read_checkpoint(path, key)
    state = checkpoint.get(KEY)
    if state is None:  # written before checkpoints described themselves: its run folder does
        from deeptune.run.saved import load_run

        return load_run(path, ckpt=path).model
    model = rebuild(state, path)
    model.load_state_dict(checkpoint["state_dict"], strict=strict)
    return model.eval()


def rebuild(state: dict, origin: Path):
    """The module the saved config describes, its weights as initialised. The config is data
    from a file like a run folder's config.yaml: its targets are checked before any is built."""
    import torch

    from deeptune import builders
    from deeptune.config import validate
    from deeptune.run.saved import rebuilt_config

    cfg = rebuilt_config(state["config"], origin)
    validate(cfg)
    task, classes = state["task"], state["classes"]
    shape = SimpleNamespace(
        task=task,
        input_shape=tuple(state["input_shape"]),
        num_outputs=1 if task == "regression" else len(classes),
        classes=classes,
        vocab_size=state.get("vocab_size"),
    )
    with torch.random.fork_rng():  # building draws initial weights: leave the caller's RNG be
        model = builders.module(cfg, shape, pretrained=False)
    model.deeptune_state = state
    return model
