"""Restarts: N models that differ only in their seed (seed, seed+1, ...), one after another.

Each lives in <run>/restart_<i>/ as a plain run would; the run's metrics.json holds every
seed's figures, their mean, std, min, max and 95% confidence interval, and the ensemble.
"""

import copy
import logging
from pathlib import Path

import numpy as np
from omegaconf import DictConfig

from deeptune import outputs

log = logging.getLogger(__name__)


def run(cfg: DictConfig, table, n: int, fit_part) -> tuple[dict, bool]:
    """`fit_part(cfg, table)` trains one restart in its folder (or reads back a finished one)."""
    out_dir = Path(cfg.paths.output_dir)
    runs, members, is_main = [], [], True
    wandb = (cfg.get("logger") or {}).get("wandb")
    # One model at a time. A batched back end (the N seeds' networks stacked and trained in one
    # step with torch.func) would replace this loop and return the same list of per-seed metrics.
    for i in range(n):
        one = copy.deepcopy(cfg)
        one.seed, one.restarts, one.ensemble = cfg.seed + i, 1, "none"  # a plain run's config
        one.paths.output_dir = str(out_dir / f"restart_{i}")
        if wandb is not None and wandb.get("group") is None:
            one.logger.wandb.group = out_dir.name  # the restarts side by side in W&B
        metrics, is_main = fit_part(one, table)
        runs.append(metrics)
        members.append((one, metrics.get("best_checkpoint")))
    summary = summarize(runs, [cfg.seed + i for i in range(n)])
    if cfg.get("ensemble", "none") != "none" and is_main:
        summary["ensemble"] = ensemble(cfg, table, members)
    if is_main:
        outputs.save_config(cfg, out_dir)
    return summary, is_main


def summarize(runs: list[dict], seeds: list[int]) -> dict:
    """Top-level train / val / test are the means; `restarts` has the spread per metric."""
    n = len(runs)
    summary: dict = {"restarts": {"n": n, "seeds": seeds}}
    for split in ("train", "val", "test"):
        names = runs[0].get(split, {})
        values = {k: np.array([r[split][k] for r in runs]) for k in names}
        summary[split] = {k: float(v.mean()) for k, v in values.items()}
        if split != "train":
            summary["restarts"][split] = {k: _spread(v) for k, v in values.items()}
    summary["epochs"] = [r["epochs"] for r in runs]
    summary["best_checkpoint"] = [r.get("best_checkpoint") for r in runs]
    if "stepwise" in runs[0]:
        summary["stepwise"] = runs[0]["stepwise"]
    return summary


def _spread(v: np.ndarray) -> dict:
    mean, std = float(v.mean()), float(v.std(ddof=1))
    # Student's t: with few seeds the normal 1.96 would claim too narrow an interval.
    from scipy import stats  # imported here: it costs half a second at start-up

    half = float(stats.t.ppf(0.975, len(v) - 1) * std / np.sqrt(len(v)))
    return {
        "mean": mean,
        "std": std,
        "min": float(v.min()),
        "max": float(v.max()),
        "ci95": [mean - half, mean + half],
        "runs": v.tolist(),
    }


def ensemble(cfg: DictConfig, table, members: list) -> dict:
    from deeptune import ensemble as ens

    splits = ("val", "test") if cfg.get("test") else ("val",)
    figures = ens.evaluate(cfg.ensemble, members, table, splits)
    ckpts = [ckpt for _, ckpt in members]
    manifest = ens.save_manifest(Path(cfg.paths.output_dir), cfg.ensemble, ckpts)
    log.info(
        "ensemble (%s) of %d restarts: %s; manifest %s", cfg.ensemble, len(ckpts), figures, manifest
    )
    return {"method": cfg.ensemble, **figures, "manifest": str(manifest)}
