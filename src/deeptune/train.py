"""`python train.py [overrides]`: train, keep the best checkpoint, test it, report.

The config is checked whole before torch and lightning are imported, so a typo costs a second,
not the five those imports take; then the data set is loaded (or the user's data module set up:
deeptune.data.component) and checked against the config, and the run (one model, K folds or
N restarts: deeptune.run.repeat) goes into its folder.
"""

import time
from pathlib import Path

import hydra
from omegaconf import DictConfig

import deeptune.resolvers  # noqa: F401  (registers the resolvers of hydra/launcher=slurm)
from deeptune import builders, outputs, provenance, tasks, trust
from deeptune.cli import guarded, in_multirun, run_task
from deeptune.config import (
    CONFIG_PATH,
    derive,
    validate,
    validate_against_data,
    validate_against_machine,
)
from deeptune.errors import Interrupted
from deeptune.run import repeat, resume
from deeptune.run.summary import print_summary
from deeptune.threads import apply_threads


def train(cfg: DictConfig) -> float | list[float]:
    """Fit, test the kept checkpoint, write metrics.json; return `optimized_metric` (the mean
    over the folds or the restarts when there are several), or the list of its objectives'
    values when it lists several (a multi-objective sweep)."""
    validate(cfg)
    if done := resume.finished_job(cfg):  # a job that finished before its sweep was stopped
        return _objective(cfg, done)
    with trust.trusting(cfg.trust_config):
        return _train(cfg)


def _train(cfg: DictConfig) -> float | list[float]:
    validate_against_machine(cfg)  # a GPU asked for and none there: said before the data loads
    try:
        data = builders.data(cfg)  # a Table, or a component data module's description
        directions = validate_against_data(cfg, data)
        if previous := resume.interrupted_run(cfg):
            cfg = derive(cfg, {"paths.output_dir": str(previous)})
        apply_threads(cfg.threads)
        started = time.perf_counter()
        metrics, is_main = repeat.run(cfg, data)
    except Interrupted as stop:
        resume.record_interruption(cfg, stop)
        if not stop.where:
            stop.where = f"in {cfg.paths.output_dir}"
        raise
    except Exception:
        out_dir = Path(cfg.paths.output_dir)
        if (out_dir / outputs.METRICS_FILE).is_file():  # the fit's record: status failed, why
            print(f"run folder: {out_dir}", flush=True)
        raise
    import torch

    metrics.update(
        status="completed",
        seed=cfg.seed,
        threads=torch.get_num_threads(),
        # a job of hydra/launcher=batched brings its share of its group's time
        duration_s=metrics.get("duration_s") or round(time.perf_counter() - started, 2),
        provenance=provenance.collect(),  # the commit, versions and device behind the figures
    )
    if directions:  # the `metrics` group's: what the sweep report sorts them by, without torch
        metrics["directions"] = directions
    out_dir = Path(cfg.paths.output_dir)
    if is_main:
        outputs.save_metrics(metrics, out_dir)
        resume.discard_last(cfg, out_dir)
        print_summary("deeptune: final metrics", metrics, out_dir)
        if overfit := metrics.get("overfit"):  # debug=overfit: a FAIL ends a single run with 1
            from deeptune.diagnostics.overfit import say_verdict

            say_verdict(overfit, fail_raises=not in_multirun())
    return _objective(cfg, metrics)


def _objective(cfg: DictConfig, metrics: dict) -> float | list[float]:
    if isinstance(cfg.optimized_metric, str):
        return tasks.objective_value(metrics, cfg.optimized_metric)
    return [tasks.objective_value(metrics, key) for key in tasks.objectives(cfg.optimized_metric)]


@hydra.main(version_base="1.3", config_path=CONFIG_PATH, config_name="train")
def main(cfg: DictConfig) -> float | list[float] | None:
    return run_task(train, cfg)


cli = guarded(main)

if __name__ == "__main__":
    cli()
