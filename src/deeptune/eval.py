"""`python eval.py ckpt_path=<run>/checkpoints/best.ckpt`: test a saved model.

The run's own resolved config (config.yaml beside checkpoints/) rebuilds the same network and
the same test split (deeptune.run.saved), so no override needs retyping.
"""

from pathlib import Path

import hydra
from omegaconf import DictConfig

from deeptune import builders, outputs, trust
from deeptune.cli import guarded, run_task
from deeptune.config import CONFIG_DIR, validate
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


def objective_on_test(metrics: dict, run_cfg: DictConfig) -> float:
    """The test figure of the run's optimized metric: test/mse for optimized_metric=val/mse. An
    ensemble has no loss: then the task's headline figure (acc, or mse)."""
    row = metrics["test"]
    name = str(run_cfg.optimized_metric).partition("/")[2]
    return row[name] if name in row else row[outputs.metric_names(metrics)[0]]


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="eval")
def main(cfg: DictConfig) -> float | None:
    return run_task(evaluate, cfg)


cli = guarded(main)

if __name__ == "__main__":
    cli()
