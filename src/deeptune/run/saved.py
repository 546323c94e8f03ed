"""A saved run, rebuilt from its folder: the one reader that eval, the ensembles and the lab use.

`load_run` reads the run's config.yaml (deeptune.outputs), validates it as train.py did, loads
its data set and builds its network in exactly the order `fit_one` did (seed, then data module,
then model), so without a checkpoint the weights are the ones the run started from, and with
one they are the ones it saved.
"""

from pathlib import Path
from typing import NamedTuple

from omegaconf import DictConfig, OmegaConf

from deeptune import builders, outputs, trust
from deeptune.config import derive, validate, validate_against_data
from deeptune.data.component import ComponentData
from deeptune.errors import ConfigError
from deeptune.run.portable import describe


class LoadedRun(NamedTuple):
    cfg: DictConfig
    data: object  # the Table, or a component data module's description (builders.data)
    datamodule: object
    model: object  # the LightningModule, in eval mode, on the CPU


def run_folder(path: Path) -> Path:
    """The run folder that holds config.yaml: `path` itself, or the run of a checkpoint
    (<run>/checkpoints/x.ckpt, <run>/fold_k/checkpoints/x.ckpt, <run>/x.ckpt)."""
    path = Path(path)
    candidates = (
        [path] if path.is_dir() else [path.parent.parent, path.parent, path.parent.parent.parent]
    )
    for folder in candidates:
        if (folder / outputs.RESOLVED_CONFIG).is_file():
            return folder
    raise ConfigError(
        "ckpt_path",
        str(path),
        f"no {outputs.RESOLVED_CONFIG} found next to its checkpoints/ folder; "
        "pass a checkpoint written by train.py",
    )


def load_weights(ckpt: Path) -> dict:
    """A Lightning checkpoint's state_dict (tensors only: weights_only=True)."""
    return trust.read_checkpoint(ckpt, "ckpt_path")["state_dict"]


def read_config(folder: Path) -> DictConfig:
    """The run's config, as it ran, less where it came from: rebuilding it must not resume from
    `ckpt_path` or load the weights `finetune.from` started it with. Its targets must be ones
    deeptune rebuilds runs from (deeptune.trust), unless the command trusts the folder."""
    path = Path(folder) / outputs.RESOLVED_CONFIG
    return rebuilt_config(outputs.read_yaml(path), path)


def rebuilt_config(saved: dict, origin: Path) -> DictConfig:
    """A config read from `origin` (a run folder's config.yaml, a checkpoint), checked by
    deeptune.trust, as the config that rebuilds its run."""
    trust.check_saved_config(saved, origin)
    return derive(OmegaConf.create(saved), {"ckpt_path": None, "finetune.from": None})


def load_run(path: Path, ckpt: Path | None = None, data=None, datamodule=None) -> LoadedRun:
    """The run at `path` (its folder, or one of its checkpoints), with the weights of `ckpt`
    when given (else as initialised). `data` and `datamodule`: the data set (builders.data) and
    its split, when the caller has them already (the members of an ensemble share one)."""
    import lightning as L

    state = load_weights(Path(ckpt)) if ckpt is not None else None
    cfg = read_config(run_folder(path))
    validate(cfg)
    data = data if data is not None else builders.data(cfg)
    validate_against_data(cfg, data)
    L.seed_everything(cfg.seed, workers=True, verbose=False)  # as fit_one: seed, data, model
    if datamodule is None:  # builds no random state: seeding first keeps fit_one's order
        datamodule = builders.datamodule(cfg, data)
        # the tensor path's splits onto the CPU; a component module, set up for fit already,
        # also for test: its test split is scored outside a trainer (the ensembles)
        datamodule.setup("test" if isinstance(data, ComponentData) else None)
    model = builders.module(cfg, datamodule, pretrained=False)
    model.deeptune_state = describe(cfg, datamodule)  # what an old checkpoint lacks
    if state is not None:
        model.load_state_dict(state)
    model.eval()
    return LoadedRun(cfg, data, datamodule, model)
