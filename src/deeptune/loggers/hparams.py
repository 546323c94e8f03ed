"""What every logger is told about a run before it trains: the resolved config as dotted keys,
the chosen config groups, the network's size and the provenance; and how a sweep's runs are
grouped, so a tracker can filter, group and compare them without the run folder."""

import json
import math
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from deeptune import provenance, tasks

MAX_KEY = 250  # MLflow refuses longer keys
MAX_VALUE = 500  # MLflow before 1.28 refuses longer values (6000 since); Lightning cuts to 250


def hyperparameters(cfg: DictConfig, net) -> dict:
    """{dotted key: value}: `model.depth`, `optimizer.lr`, `choices.optimizer`, `n_params`,
    `provenance.git.commit`, ...; lists as strings, so every tracker stores the same value."""
    plain = OmegaConf.to_container(cfg, resolve=True)
    plain.pop("hydra", None)
    params = {
        **_flatten(plain),
        **_flatten({"choices": choices()}),
        "n_params": sum(p.numel() for p in net.parameters()),
        **_flatten({"provenance": provenance.collect()}),
    }
    return {key[:MAX_KEY]: _value(value) for key, value in params.items()}


def choices() -> dict:
    """The config groups picked (`optimizer: adam`), Hydra's own left out; {} when Hydra did
    not start the run (compose, tests)."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return {}
    picked = HydraConfig.get().runtime.choices
    return {k: v for k, v in picked.items() if not k.startswith("hydra")}


def log(loggers, cfg: DictConfig, net) -> None:
    """Once per fit, before training: each logger's own `log_hyperparams`. TensorBoard's HParams
    tab also needs the metric's name now; its value is logged by `log_result` at the end."""
    from lightning.pytorch.loggers import TensorBoardLogger

    params = hyperparameters(cfg, net)
    for logger in loggers:
        if isinstance(logger, TensorBoardLogger):
            logger.log_hyperparams(params, metrics={hp_metric(cfg): math.nan})
        else:
            logger.log_hyperparams(params)
        logger.save()


def log_result(loggers, cfg: DictConfig, metrics: dict, step: int) -> None:
    """The kept model's `optimized_metric` as TensorBoard's hparams metric."""
    from lightning.pytorch.loggers import TensorBoardLogger

    value = tasks.objective_value(metrics, tasks.monitored(cfg.optimized_metric))
    for logger in loggers:
        if isinstance(logger, TensorBoardLogger) and value is not None:
            logger.log_metrics({hp_metric(cfg): value}, step=step)
            logger.finalize("success")  # flushed: the event file has it even if the run dies


def hp_metric(cfg: DictConfig) -> str:
    return f"hp/{tasks.monitored(cfg.optimized_metric)}"


def sweep_name(root_dir: str | None = None) -> str | None:
    """The sweep folder a multirun job runs in, relative to the project (`multirun/<date>/
    <time>`: its name alone, the time, repeats every day); None outside a multirun."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if not HydraConfig.initialized() or HydraConfig.get().mode != RunMode.MULTIRUN:
        return None
    sweep = Path(HydraConfig.get().sweep.dir).resolve()
    try:
        return str(sweep.relative_to(Path(root_dir or ".").resolve()))
    except ValueError:
        return sweep.name


def grouping(cfg: DictConfig) -> dict:
    """Overrides that group a fit with its sweep and name it after its folder: W&B's `group`
    (unless set: restarts already share theirs), MLflow's `sweep` tag and run name."""
    loggers = cfg.get("logger") or {}
    sweep = sweep_name(cfg.paths.get("root_dir"))
    updates: dict = {}
    wandb = loggers.get("wandb")
    if wandb is not None and wandb.get("group") is None and sweep:
        updates["logger.wandb.group"] = sweep
    mlflow = loggers.get("mlflow")
    if mlflow is not None:
        if mlflow.get("run_name") is None:
            updates["logger.mlflow.run_name"] = Path(cfg.paths.output_dir).name
        tags = mlflow.get("tags") or {}
        if sweep and "sweep" not in tags:
            updates["logger.mlflow.tags"] = {**tags, "sweep": sweep}
    return updates


def _flatten(tree, prefix: str = "") -> dict:
    if not isinstance(tree, dict):
        return {prefix: tree}
    if not tree:  # an empty node (`scheduler: {}`): trackers that flatten would drop it anyway
        return {}
    out = {}
    for key, value in tree.items():
        out.update(_flatten(value, f"{prefix}.{key}" if prefix else str(key)))
    return out


def _value(value):
    if isinstance(value, (list, tuple)):
        value = json.dumps(value, default=str)
    if isinstance(value, str):
        return value[:MAX_VALUE]
    return value
