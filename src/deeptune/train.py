"""`python train.py [overrides]`: train, keep the best checkpoint, test it, report.

torch and lightning are imported only after the config has passed its checks, so a typo
costs a second, not the five that those imports take.
"""

import time
from pathlib import Path

import hydra
from omegaconf import DictConfig

from deeptune import builders, outputs
from deeptune.cli import guarded, run_task
from deeptune.config import CONFIG_DIR, validate


def train(cfg: DictConfig) -> float:
    """Fit, test the best checkpoint, write metrics.json; return `optimized_metric`."""
    validate(cfg)
    table = builders.source(cfg)
    out_dir = Path(cfg.paths.output_dir)

    import lightning as L

    started = time.perf_counter()
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    datamodule = builders.datamodule(cfg, table)
    model = builders.classifier(cfg, datamodule)
    loggers = builders.loggers(cfg)
    callbacks = builders.callbacks(cfg, has_logger=bool(loggers))
    trainer = builders.trainer(cfg, callbacks=callbacks, logger=loggers or False)
    if trainer.is_global_zero:
        outputs.save_config(cfg, out_dir)

    try:
        metrics = _fit_and_test(cfg, trainer, model, datamodule)
    except Exception as err:
        if type(err).__name__ != "TrialPruned" or not trainer.is_global_zero:
            raise
        # The sweep's pruner stopped this trial: say so, then let the sweeper record it.
        pruned = {"status": "pruned", "epochs": trainer.current_epoch, "seed": cfg.seed}
        outputs.save_metrics(pruned, out_dir)
        raise
    finally:
        _finish_wandb(loggers)
    metrics.update(
        status="completed", seed=cfg.seed, duration_s=round(time.perf_counter() - started, 2)
    )
    if trainer.is_global_zero:
        outputs.save_metrics(metrics, out_dir)
        outputs.print_summary("deeptune: final metrics", metrics, out_dir)
    split, _, name = cfg.optimized_metric.partition("/")
    return metrics[split][name]


def _fit_and_test(cfg: DictConfig, trainer, model, datamodule) -> dict:
    trainer.fit(model, datamodule=datamodule, ckpt_path=cfg.get("ckpt_path"))
    metrics = {"train": outputs.split_metrics(trainer.callback_metrics).get("train", {})}
    best = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
    # Report the model that was kept: the best checkpoint when there is one.
    ckpt = best or None
    evaluations = [trainer.validate] + ([trainer.test] if cfg.get("test") else [])
    for evaluate in evaluations:
        results = evaluate(model, datamodule, ckpt_path=ckpt, verbose=False)[0]
        metrics.update(outputs.split_metrics(results))
    metrics.update(
        epochs=trainer.current_epoch, best_epoch=_best_epoch(best), best_checkpoint=best or None
    )
    return metrics


def _best_epoch(path: str) -> int | None:
    if not path:
        return None
    import torch

    return torch.load(path, map_location="cpu", weights_only=True)["epoch"] + 1  # 1-based


def _finish_wandb(loggers) -> None:
    """Close the W&B run so that the next multirun job starts a run of its own."""
    if any(type(lg).__name__ == "WandbLogger" for lg in loggers):
        import wandb

        wandb.finish()


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="train")
def main(cfg: DictConfig) -> float | None:
    return run_task(train, cfg)


cli = guarded(main)

if __name__ == "__main__":
    cli()
