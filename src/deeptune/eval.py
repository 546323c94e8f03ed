"""`python eval.py ckpt_path=<run>/checkpoints/best.ckpt`: test a saved model.

The run's own resolved config (config.yaml beside checkpoints/) rebuilds the same network
and the same test split, so no override needs retyping.
"""

from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

from deeptune import builders, outputs
from deeptune.cli import guarded, run_task
from deeptune.config import CONFIG_DIR, validate
from deeptune.errors import ConfigError


def run_config(ckpt: Path) -> DictConfig:
    """The config saved by the run that wrote `ckpt` (run/checkpoints/x.ckpt -> run/config.yaml)."""
    for folder in (ckpt.parent.parent, ckpt.parent, ckpt.parent.parent.parent):  # .../fold_k/
        if (folder / outputs.RESOLVED_CONFIG).is_file():
            cfg = OmegaConf.load(folder / outputs.RESOLVED_CONFIG)
            cfg.ckpt_path = None  # where that run resumed from is no concern of ours
            if "finetune" in cfg:
                cfg.finetune["from"] = None  # nor where it started from: the weights are here
            return cfg
    raise ConfigError(
        "ckpt_path",
        str(ckpt),
        f"no {outputs.RESOLVED_CONFIG} found next to its checkpoints/ folder; "
        "pass a checkpoint written by train.py",
    )


def load_weights(ckpt: Path) -> dict:
    import torch

    try:
        state = torch.load(ckpt, map_location="cpu", weights_only=True)
    except Exception as err:  # truncated, not a zip, not a checkpoint at all
        raise ConfigError(
            "ckpt_path",
            str(ckpt),
            f"cannot read the checkpoint ({type(err).__name__}: {str(err).splitlines()[0][:120]})",
        ) from None
    if not isinstance(state, dict) or "state_dict" not in state:
        raise ConfigError("ckpt_path", str(ckpt), "not a Lightning checkpoint (no state_dict)")
    return state["state_dict"]


def evaluate(cfg: DictConfig) -> float:
    if not cfg.get("ckpt_path"):
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
    state_dict = load_weights(ckpt)
    run_cfg = run_config(ckpt)
    validate(run_cfg)
    table = builders.source(run_cfg)

    datamodule = builders.datamodule(run_cfg, table)
    model = builders.module(run_cfg, datamodule)
    model.load_state_dict(state_dict)
    trainer = builders.trainer(
        cfg,
        callbacks=[],
        logger=False,
        enable_model_summary=False,
        enable_progress_bar=False,
    )
    metrics = outputs.split_metrics(trainer.test(model, datamodule, verbose=False)[0])
    metrics["checkpoint"] = str(ckpt.resolve())
    out_dir = Path(cfg.paths.output_dir)
    if trainer.is_global_zero:
        outputs.save_metrics(metrics, out_dir)
        outputs.print_summary(f"deeptune: test of {ckpt.name}", metrics, out_dir)
    return objective_on_test(metrics, run_cfg)


def evaluate_ensemble(cfg: DictConfig, manifest: Path) -> float:
    """`ckpt_path=<run>/ensemble.yaml`: the restarts' checkpoints, combined as in training."""
    from deeptune import ensemble

    method, ckpts = ensemble.load_manifest(manifest)
    for ckpt in ckpts:
        if not ckpt.is_file():
            raise ConfigError("ckpt_path", str(manifest), f"its member {ckpt} does not exist")
    members = [(run_config(ckpt), str(ckpt)) for ckpt in ckpts]
    validate(members[0][0])
    figures = ensemble.evaluate(method, members, builders.source(members[0][0]), ("test",))
    metrics = {**figures, "ensemble": {"method": method, "members": [str(c) for c in ckpts]}}
    metrics["checkpoint"] = str(manifest.resolve())
    out_dir = Path(cfg.paths.output_dir)
    outputs.save_metrics(metrics, out_dir)
    outputs.print_summary(f"deeptune: test of the {method} ensemble", metrics, out_dir)
    return objective_on_test(metrics, members[0][0])


def objective_on_test(metrics: dict, run_cfg: DictConfig) -> float:
    """The test figure of the run's optimized metric: test/mse for optimized_metric=val/mse. An
    ensemble has no loss: then the task's headline figure (acc, or mse)."""
    row = metrics["test"]
    name = str(run_cfg.get("optimized_metric", "")).partition("/")[2]
    return row[name] if name in row else row[outputs.metric_names(metrics)[0]]


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="eval")
def main(cfg: DictConfig) -> float | None:
    return run_task(evaluate, cfg)


cli = guarded(main)

if __name__ == "__main__":
    cli()
