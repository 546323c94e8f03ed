"""`python train.py [overrides]`: train, keep the best checkpoint, test it, report.

torch and lightning are imported only after the config has passed its checks, so a typo
costs a second, not the five that those imports take.
"""

import json
import logging
import time
from pathlib import Path

import hydra
from omegaconf import DictConfig

import deeptune.resolvers  # noqa: F401  (registers the resolvers of hydra/launcher=slurm)
from deeptune import builders, ddp, outputs, restarts
from deeptune.cli import apply_threads, guarded, run_task
from deeptune.config import CONFIG_DIR, validate
from deeptune.errors import TrainingError
from deeptune.resume import adopt_interrupted_run, resume_point

log = logging.getLogger(__name__)


def train(cfg: DictConfig) -> float:
    """Fit, test the best checkpoint, write metrics.json; return `optimized_metric`.

    With `cv.folds=K` this trains K models on stratified folds and returns the mean; with
    `restarts=N`, N models with seeds seed, seed+1, ... (deeptune.restarts), also the mean.
    """
    validate(cfg)
    table = builders.source(cfg)
    adopt_interrupted_run(cfg)
    out_dir = Path(cfg.paths.output_dir)
    apply_threads(cfg.get("threads"))
    started = time.perf_counter()
    folds = cfg.get("cv", {}).get("folds", 1)
    if folds > 1:
        metrics, is_main = cross_validate(cfg, table, folds)
    elif cfg.get("restarts", 1) > 1:
        metrics, is_main = restarts.run(cfg, table, cfg.restarts, fit_part)
    else:
        metrics, is_main = fit_one(cfg, table)
    import torch

    metrics.update(
        status="completed",
        seed=cfg.seed,
        threads=torch.get_num_threads(),
        duration_s=round(time.perf_counter() - started, 2),
    )
    if is_main:
        outputs.save_metrics(metrics, out_dir)
        outputs.print_summary("deeptune: final metrics", metrics, out_dir)
    split, _, name = cfg.optimized_metric.partition("/")
    return metrics[split][name]


def fit_one(cfg: DictConfig, table) -> tuple[dict, bool]:
    """One model: fit, evaluate the kept checkpoint; (metrics, whether this is rank 0)."""
    import lightning as L

    from deeptune.diagnostics.final_model import check_report, final_report

    ckpt = resume_point(cfg)
    out_dir = Path(cfg.paths.output_dir)
    ddp.use_job_commands(str(out_dir))
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    datamodule = builders.datamodule(cfg, table)
    model = builders.module(cfg, datamodule)
    check_report(cfg, table, model.net)
    loggers = builders.loggers(cfg)
    callbacks = builders.callbacks(cfg, has_logger=bool(loggers))
    trainer = builders.trainer(cfg, callbacks=callbacks, logger=loggers or False)
    if trainer.is_global_zero:
        outputs.save_config(cfg, out_dir)
    try:
        metrics = _fit_and_test(cfg, trainer, model, datamodule, ckpt)
        wanted = cfg.get("report") or {}
        if trainer.is_global_zero and (wanted.get("confusion") or wanted.get("tsne")):
            metrics["report"] = final_report(cfg, model, datamodule, out_dir, loggers)
        log.info("rank %d of %d: %s", trainer.global_rank, trainer.world_size, metrics)
        return metrics, trainer.is_global_zero
    except Exception as err:
        # A sweep's pruner stopped the trial, or training diverged: record it, then let the
        # caller (or the sweeper) report it.
        pruned = type(err).__name__ == "TrialPruned"
        if (pruned or isinstance(err, TrainingError)) and trainer.is_global_zero:
            record = {"status": "pruned" if pruned else "failed", "reason": str(err)}
            record.update(epochs=trainer.current_epoch, seed=cfg.seed)
            _add_callback_reports(record, trainer)  # e.g. the gradient-health verdict
            outputs.save_metrics(record, out_dir)
        raise
    finally:
        _finish_wandb(loggers)
        ddp.end_process_group()


def fit_part(cfg: DictConfig, table) -> tuple[dict, bool]:
    """One part of a run (a fold, a restart) in its own folder, with its own metrics.json.

    With `resume=auto` a part that finished before an interruption is read back, not refit.
    """
    out_dir = Path(cfg.paths.output_dir)
    done = out_dir / outputs.METRICS_FILE
    if cfg.get("resume") == "auto" and done.is_file():
        return json.loads(done.read_text()), True
    metrics, is_main = fit_one(cfg, table)
    metrics["seed"] = cfg.seed
    if is_main:
        outputs.save_metrics(metrics, out_dir)
    return metrics, is_main


def cross_validate(cfg: DictConfig, table, folds: int) -> tuple[dict, bool]:
    """K models, fold k validating; train / val / test figures are means over the folds."""
    import numpy as np

    out_dir = Path(cfg.paths.output_dir)
    runs = []
    for k in range(folds):
        fold_cfg = cfg.copy()
        fold_cfg.cv.fold = k  # saved in fold_k/config.yaml, so eval.py rebuilds this fold
        fold_cfg.paths.output_dir = str(out_dir / f"fold_{k}")  # its checkpoints and logs
        metrics, is_main = fit_part(fold_cfg, table)
        runs.append(metrics)
    summary: dict = {"cv": {"folds": folds}}
    for split in ("train", "val", "test"):
        names = runs[0].get(split, {})
        values = {n: np.array([run[split][n] for run in runs]) for n in names}
        summary[split] = {n: float(v.mean()) for n, v in values.items()}
        summary["cv"][split] = {
            n: {"mean": float(v.mean()), "std": float(v.std(ddof=1)), "folds": v.tolist()}
            for n, v in values.items()
        }
    summary["epochs"] = [run["epochs"] for run in runs]
    summary["best_checkpoint"] = [run["best_checkpoint"] for run in runs]
    if is_main:
        outputs.save_config(cfg, out_dir)
    return summary, is_main


def _fit_and_test(cfg: DictConfig, trainer, model, datamodule, ckpt: str | None) -> dict:
    started = time.perf_counter()
    trainer.fit(model, datamodule=datamodule, ckpt_path=ckpt)
    fit_s = round(time.perf_counter() - started, 3)
    metrics = {"train": outputs.split_metrics(trainer.callback_metrics).get("train", {})}
    best = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
    # Report the model that was kept: the best checkpoint when there is one.
    ckpt = best or None
    evaluations = [trainer.validate] + ([trainer.test] if cfg.get("test") else [])
    for evaluate in evaluations:
        results = evaluate(model, datamodule, ckpt_path=ckpt, verbose=False)[0]
        metrics.update(outputs.split_metrics(results))
    metrics.update(
        epochs=trainer.current_epoch,
        best_epoch=_best_epoch(best),
        best_checkpoint=best or None,
        fit_s=fit_s,  # seconds inside trainer.fit: what scripts/bench_overhead.py compares
    )
    if report := getattr(model, "finetune_report", None):
        metrics["finetune"] = dict(report)
    _add_callback_reports(metrics, trainer)
    return metrics


def _add_callback_reports(metrics: dict, trainer) -> None:
    """Merge each callback's `report()` (step-wise schedule, frozen layers, gradient health, ...)
    into metrics.json's entries; two callbacks may fill the same entry."""
    for callback in trainer.callbacks:
        for key, value in getattr(callback, "report", dict)().items():
            metrics.setdefault(key, {}).update(value)


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
