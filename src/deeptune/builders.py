"""Objects built from the config: the data, the model, the loggers, the callbacks, the trainer.

`train` and `eval` share these, so a checkpoint is always read back into the same network.
"""

import hashlib
import logging
import netrc
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig

from deeptune.errors import ConfigError

if TYPE_CHECKING:  # the sources import scikit-learn, a second that --help should not pay
    from deeptune.data.sources import Table

log = logging.getLogger(__name__)


def build(node: DictConfig, key: str, **kwargs):
    """hydra.utils.instantiate, with the failure reported against the config key."""
    try:
        return instantiate(node, **kwargs)
    except InstantiationException as err:
        cause = err.__cause__ or err
        if isinstance(cause, ConfigError):
            raise cause from None
        target = node.get("_target_", "?")
        raise ConfigError(key, target, f"{type(cause).__name__}: {cause}") from None


def source(cfg: DictConfig) -> "Table":
    """Load the data set (numpy / scikit-learn only: runs before torch is imported), then check
    that the config's objective fits its task (classification or regression)."""
    from deeptune.config import check_task

    table = build(cfg.data.source, "data.source")
    check_task(cfg, table.task)
    return table


def datamodule(cfg: DictConfig, table: "Table"):
    cv = cfg.get("cv") or {}
    fold = (cv.fold, cv.folds) if cv.get("fold") is not None else None
    return build(_own_arguments(cfg.data), "data", source=table, fold=fold)


def _own_arguments(node: DictConfig) -> DictConfig:
    """`node` without the keys its _target_ does not take.

    The data node is shared: a data set's config may add keys for its source alone, such as
    `data.seq_len` (interpolated into data.source.seq_len, and short to type), which the data
    module's constructor would reject. The copy keeps its parent, so ${...} still resolve.
    """
    import inspect

    from hydra.utils import get_class
    from omegaconf import open_dict

    try:
        params = inspect.signature(get_class(node._target_)).parameters
    except Exception:  # a bad _target_: let build() report it against the key
        return node
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return node
    extra = [k for k in node if not k.startswith("_") and k not in params]
    if not extra:
        return node
    node = node.copy()
    with open_dict(node):
        for key in extra:
            del node[key]
    return node


def module(cfg: DictConfig, dm, pretrained: bool = True):
    """The network in the LightningModule of the data's task (a Classifier or a Regressor);
    `finetune.from` loads weights (unless pretrained=False: a checkpoint is about to overwrite
    them)."""
    from deeptune.models.module import module_class

    # Every model takes the same two: one sample's shape and the number of outputs.
    net = build(cfg.model, "model", input_shape=list(dm.input_shape), outputs=dm.num_outputs)
    optimizer = build(cfg.optimizer, "optimizer")
    scheduler = build(cfg.scheduler, "scheduler") if cfg.get("scheduler") else None
    task_module = module_class(dm.task)
    ft = cfg.get("finetune") or {}
    if not (pretrained and ft.get("from")):
        return task_module(net, dm.num_outputs, optimizer, scheduler)
    from deeptune.finetune import load_pretrained

    report = load_pretrained(net, ft["from"])
    # The head always learns at the full rate, even when its shape let it be loaded.
    old = [n for n in report["loaded"] if not n.startswith("head.")]
    model = task_module(
        net, dm.num_outputs, optimizer, scheduler, pretrained=old, lr_scale=ft.lr_scale
    )
    model.finetune_report = report
    return model


def wandb_has_key() -> bool:
    """An API key in WANDB_API_KEY or in the netrc file that `wandb login` writes."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    host = urlsplit(os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai")).netloc
    try:
        return netrc.netrc(os.environ.get("NETRC")).authenticators(host) is not None
    except (OSError, netrc.NetrcParseError):
        return False


def loggers(cfg: DictConfig) -> list:
    built = []
    for name, node in (cfg.get("logger") or {}).items():
        if node is None:  # logger.<name>=null switches one off
            continue
        if "WandbLogger" in node.get("_target_", ""):
            node = _wandb_settings(node)
        built.append(build(node, f"logger.{name}"))
    return built


def _wandb_settings(node: DictConfig) -> DictConfig:
    """A run id fixed by the run folder, and offline logging when there is no API key.

    The id makes a resumed or requeued run continue its own W&B run instead of starting a new
    one; without a key W&B would prompt for one or fail, so log offline and say how to upload.
    """
    node = node.copy()
    if node.get("id") is None:
        folder = str(Path(node.save_dir).resolve())
        node.id = hashlib.sha1(folder.encode()).hexdigest()[:16]
    if node.get("offline") or os.environ.get("WANDB_MODE") or wandb_has_key():
        return node  # the user's explicit choice, or an online run
    node.offline = True
    log.warning(
        "W&B: no API key found, logging offline to %s/wandb; upload later with "
        "`wandb sync %s/wandb/offline-run-*`",
        node.save_dir,
        node.save_dir,
    )
    return node


def callbacks(cfg: DictConfig, has_logger: bool) -> list:
    built = []
    for name, node in (cfg.get("callbacks") or {}).items():
        if node is None:  # callbacks.<name>=null switches one off
            continue
        if "LearningRateMonitor" in node.get("_target_", "") and not has_logger:
            continue  # Lightning refuses it without a logger
        if "ProgressBar" in node.get("_target_", "") and not sys.stdout.isatty():
            continue  # in a log file a bar is noise, and its redraws cost CPU
        built.append(build(node, f"callbacks.{name}"))
    strategy = (cfg.get("stepwise") or {}).get("strategy", "none")
    if strategy != "none":
        from deeptune.stepwise import StepwiseUnfreeze

        built.append(StepwiseUnfreeze(strategy, cfg.stepwise.every))
    ft = cfg.get("finetune") or {}
    if ft.get("freeze"):
        from deeptune.finetune import FreezeLayers

        built.append(FreezeLayers(ft.freeze, ft.get("freeze_epochs"), ft.get("lr_scale", 1.0)))
    # A trial of an Optuna sweep reports every epoch; K folds or N restarts would report K or N
    # curves per trial.
    trial = cfg.get("optuna") and cfg.optuna.get("trial") is not None
    if trial and cfg.get("cv", {}).get("folds", 1) == 1 and cfg.get("restarts", 1) == 1:
        from deeptune.sweeps.pruning import OptunaPruning

        built.append(OptunaPruning.from_config(cfg))
    return built


def trainer(cfg: DictConfig, callbacks: list, **kwargs):
    from lightning.pytorch.callbacks import ModelCheckpoint, ProgressBar

    # Without a configured ModelCheckpoint or progress bar, Lightning would add its own.
    kwargs.setdefault(
        "enable_checkpointing", any(isinstance(c, ModelCheckpoint) for c in callbacks)
    )
    kwargs.setdefault("enable_progress_bar", any(isinstance(c, ProgressBar) for c in callbacks))
    try:
        return build(cfg.trainer, "trainer", callbacks=callbacks, **kwargs)
    except ConfigError as err:  # almost always the device: name the key users set
        raise ConfigError(
            "trainer.accelerator", cfg.trainer.get("accelerator"), err.allowed
        ) from None
