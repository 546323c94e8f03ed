"""`python eval.py ckpt_path=<run>/checkpoints/best.ckpt`: test a saved model.

The run's own resolved config (config.yaml beside checkpoints/) rebuilds the same network and
the same test split (deeptune.run.saved), so no override needs retyping.
"""

from pathlib import Path

import hydra
from omegaconf import DictConfig

from deeptune import builders, outputs, tasks, trust
from deeptune.cli import guarded, run_task
from deeptune.config import CONFIG_PATH, validate, validate_against_machine
from deeptune.errors import ConfigError
from deeptune.run.saved import load_run, read_config, run_folder
from deeptune.run.schema import EvalConfig
from deeptune.run.summary import print_summary


def evaluate(cfg: DictConfig) -> float:
    validate(cfg, EvalConfig)
    with trust.trusting(cfg.trust_config):
        return _evaluate(cfg)


def _evaluate(cfg: DictConfig) -> float:
    if not cfg.ckpt_path:
        raise ConfigError(
            "ckpt_path",
            None,
            "required: python eval.py ckpt_path=outputs/<date>/<time>/checkpoints/best.ckpt",
        )
    ckpt = Path(cfg.ckpt_path).expanduser()
    if not ckpt.is_file():
        raise ConfigError("ckpt_path", str(ckpt), "no such file")
    validate_against_machine(cfg)  # trainer=gpu where there is none: said before the model loads
    if cfg.get("data"):
        return evaluate_on_table(cfg, ckpt)
    if ckpt.suffix in (".yaml", ".yml"):
        return evaluate_ensemble(cfg, ckpt)
    run = load_run(ckpt, ckpt=ckpt)
    trainer = builders.trainer(
        cfg, callbacks=[], logger=False, enable_model_summary=False, enable_progress_bar=False
    )
    metrics = outputs.split_metrics(trainer.test(run.model, run.datamodule, verbose=False)[0])
    metrics["checkpoint"] = str(ckpt.resolve())
    out_dir = Path(cfg.paths.output_dir)
    if trainer.is_global_zero:
        outputs.save_metrics(metrics, out_dir)
        print_summary(f"deeptune: test of {ckpt.name}", metrics, out_dir)
    return objective_on_test(metrics, run.cfg)


def evaluate_ensemble(cfg: DictConfig, manifest: Path) -> float:
    """`ckpt_path=<run>/ensemble.yaml`: the restarts' checkpoints, combined as in training."""
    from deeptune.run import ensemble

    method, ckpts = ensemble.load_manifest(manifest)
    figures = ensemble.evaluate(method, ckpts, ("test",))
    first = read_config(run_folder(ckpts[0]))
    metrics = {**figures, "ensemble": {"method": method, "members": [str(c) for c in ckpts]}}
    metrics["checkpoint"] = str(manifest.resolve())
    out_dir = Path(cfg.paths.output_dir)
    outputs.save_metrics(metrics, out_dir)
    print_summary(f"deeptune: test of the {method} ensemble", metrics, out_dir)
    return objective_on_test(metrics, first)


def evaluate_on_table(cfg: DictConfig, ckpt: Path) -> float:
    """`data=csv data.source.path=new.csv`: a checkpoint (or an ensemble) tested on a labelled
    table it never saw, scaled with its own training scaler, its labels in the training order."""
    from omegaconf import OmegaConf

    from deeptune.predictor import load

    predictor = load(ckpt, trust_config=cfg.trust_config)
    table = builders.source(cfg)
    if table.task != predictor.task:
        raise ConfigError("data.source.task", table.task, f"the model is a {predictor.task}")
    x = table.x
    if table.features is not None:  # named columns: matched to the training features by name
        import pandas as pd

        x = pd.DataFrame(table.x, columns=table.feature_names)
    metrics = {"test": predictor.score(x, training_targets(table, predictor, cfg))}
    metrics["checkpoint"] = str(ckpt.resolve())
    metrics["data"] = OmegaConf.to_container(cfg.data.source, resolve=True)
    out_dir = Path(cfg.paths.output_dir)
    outputs.save_metrics(metrics, out_dir)
    print_summary(f"deeptune: {ckpt.name} on {table_name(cfg)}", metrics, out_dir)
    return objective_on_test(metrics, OmegaConf.create(predictor.state["config"]))


def training_targets(table, predictor, cfg: DictConfig):
    """The table's targets as the network's class indices (the training classes' order); a
    label the model never saw cannot be scored."""
    import numpy as np

    if table.task == "regression":
        return table.y
    known = {name: i for i, name in enumerate(predictor.classes)}
    if unseen := [c for c in table.classes if c not in known]:
        target = cfg.data.source.get("target") or cfg.data.source.get("target_key")
        raise ConfigError(
            "data.source.target",
            target,
            f"label(s) {unseen} were not seen in training; the model knows {predictor.classes}",
        )
    return np.array([known[c] for c in table.classes], dtype=np.int64)[table.y]


def table_name(cfg: DictConfig) -> str:
    path = cfg.data.source.get("path")
    return Path(path).name if path else str(cfg.data.source._target_).rpartition(".")[2]


def objective_on_test(metrics: dict, run_cfg: DictConfig) -> float:
    """The test figure of the run's optimized metric: test/mse for optimized_metric=val/mse. An
    ensemble has no loss: then the task's headline figure (acc, or mse)."""
    row = metrics["test"]
    name = tasks.monitored(run_cfg.optimized_metric).partition("/")[2]
    return row[name] if name in row else row[outputs.metric_names(metrics)[0]]


@hydra.main(version_base="1.3", config_path=CONFIG_PATH, config_name="eval")
def main(cfg: DictConfig) -> float | None:
    return run_task(evaluate, cfg)


cli = guarded(main)

if __name__ == "__main__":
    cli()
