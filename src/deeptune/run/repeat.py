"""One model, or the same model several times: K folds (`cv.folds`) or N seeds (`restarts`).

Both are one loop over parts. Each part's config is derived from the run's (its seed, its
fold, its folder <run>/fold_<k>/ or <run>/restart_<i>/), so the config.yaml it saves is exactly
what it ran, and `eval.py` on a part's checkpoint rebuilds that part. The run's metrics.json has
the means as its train / val / test figures, the spread of every metric under `cv` or
`restarts`, and, for restarts, their ensemble.

The parts run one after another, or, for restarts with `restarts_backend=batched`, together:
the N seeds' networks stacked and trained in one step with torch.func (deeptune.run.batched),
which writes the same folders and returns the same list of metrics.
"""

import json
from pathlib import Path

from omegaconf import DictConfig

from deeptune import outputs, provenance
from deeptune.config import derive
from deeptune.loggers import hparams
from deeptune.run import fit, resume

SPREAD_SPLITS = ("val", "test")


def run(cfg: DictConfig, data) -> tuple[dict, bool]:
    """(metrics, whether this process is rank 0) of the whole run. `data`: the Table, or a
    component data module's description (deeptune.data.component)."""
    from deeptune.run import batched

    if (fitted := batched.take_fitted(cfg.paths.output_dir)) is not None:
        return fitted, True  # fitted with other jobs of its sweep by hydra/launcher=batched
    parts = variants(cfg)
    if not parts:
        return fit.fit_one(cfg, data)
    if cfg.cv.folds == 1 and cfg.get("restarts_backend", "sequential") == "batched":
        runs, is_main = _fit_batched(parts, data), True
    else:
        runs, is_main = _fit_parts(parts, data)
    summary, spread = summarize(runs)
    if cfg.cv.folds > 1:
        summary["cv"] = {"folds": cfg.cv.folds, **spread}
    else:
        backend = cfg.get("restarts_backend", "sequential")
        seeds = [p.seed for p in parts]
        summary["restarts"] = {"n": len(parts), "seeds": seeds, "backend": backend, **spread}
        if cfg.ensemble != "none" and is_main:
            summary["ensemble"] = _ensemble(cfg, data, runs)
    if is_main:
        outputs.save_config(cfg, Path(cfg.paths.output_dir))
    return summary, is_main


def variants(cfg: DictConfig) -> list[DictConfig]:
    """The configs of the run's parts; [] for a plain run."""
    out = Path(cfg.paths.output_dir)
    # A trial of an Optuna sweep reports one learning curve: K folds or N seeds would report K
    # or N of them, so the parts leave the trial alone.
    pruning = "optuna_pruning" in (cfg.get("callbacks") or {})
    common: dict = {"callbacks.optuna_pruning": None} if pruning else {}
    if cfg.cv.folds > 1:
        return [
            derive(cfg, {**common, "cv.fold": k, "paths.output_dir": str(out / f"fold_{k}")})
            for k in range(cfg.cv.folds)
        ]
    if cfg.restarts == 1:
        return []
    wandb = (cfg.get("logger") or {}).get("wandb")
    if wandb is not None and wandb.get("group") is None:
        # the restarts side by side in W&B; in a sweep, under the sweep's group
        sweep = hparams.sweep_name(cfg.paths.get("root_dir"))
        common["logger.wandb.group"] = f"{sweep}/{out.name}" if sweep else out.name
    return [
        derive(
            cfg,
            {
                **common,
                "seed": cfg.seed + i,
                "restarts": 1,
                "ensemble": "none",
                "paths.output_dir": str(out / f"restart_{i}"),
            },
        )
        for i in range(cfg.restarts)
    ]


def _fit_parts(parts: list[DictConfig], data) -> tuple[list[dict], bool]:
    runs, is_main = [], True
    for part in parts:
        metrics, is_main = fit_part(part, data)
        runs.append(metrics)
    return runs, is_main


def _fit_batched(parts: list[DictConfig], data) -> list[dict]:
    """The restarts trained as one vectorised model; with `resume=auto` the ones that finished
    before an interruption are read back, the rest trained together."""
    from deeptune.run import batched

    runs: list[dict | None] = [None] * len(parts)
    todo = []
    for i, part in enumerate(parts):
        out_dir = Path(part.paths.output_dir)
        if part.resume == "auto" and outputs.run_status(out_dir) == "completed":
            runs[i] = json.loads((out_dir / outputs.METRICS_FILE).read_text())
        else:
            todo.append(i)
    if len(todo) == 1:  # one left: a plain fit
        runs[todo[0]] = fit_part(parts[todo[0]], data)[0]
    elif todo:
        fitted = batched.fit_members([parts[i] for i in todo], data)
        for i, metrics in zip(todo, fitted, strict=True):
            part = parts[i]
            metrics.update(status="completed", seed=part.seed, provenance=provenance.collect())
            outputs.save_metrics(metrics, Path(part.paths.output_dir))
            runs[i] = metrics
    return runs


def fit_part(cfg: DictConfig, data) -> tuple[dict, bool]:
    """One part in its own folder, with its own metrics.json. With `resume=auto` a part that
    finished before an interruption is read back, not fitted again."""
    out_dir = Path(cfg.paths.output_dir)
    if cfg.resume == "auto" and outputs.run_status(out_dir) == "completed":
        return json.loads((out_dir / outputs.METRICS_FILE).read_text()), True
    metrics, is_main = fit.fit_one(cfg, data)
    metrics.update(status="completed", seed=cfg.seed, provenance=provenance.collect())
    if is_main:
        outputs.save_metrics(metrics, out_dir)
        resume.discard_last(cfg, out_dir)
    return metrics, is_main


def summarize(runs: list[dict]) -> tuple[dict, dict]:
    """(the means as a run's metrics, {split: {metric: spread}} over the parts)."""
    import numpy as np

    summary: dict = {}
    spread: dict = {}
    for split in ("train", *SPREAD_SPLITS):
        names = runs[0].get(split, {})
        values = {k: np.array([r[split][k] for r in runs]) for k in names}
        summary[split] = {k: float(v.mean()) for k, v in values.items()}
        if split in SPREAD_SPLITS:
            spread[split] = {k: _spread(v) for k, v in values.items()}
    summary["n_params"] = runs[0].get("n_params")  # the parts share one architecture
    summary["epochs"] = [r["epochs"] for r in runs]
    summary["best_checkpoint"] = [r.get("best_checkpoint") for r in runs]
    if "stepwise" in runs[0]:
        summary["stepwise"] = runs[0]["stepwise"]
    return summary, spread


def _spread(v) -> dict:
    import numpy as np

    mean, std = float(v.mean()), float(v.std(ddof=1))
    # Student's t: with few parts the normal 1.96 would claim too narrow an interval.
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


def _ensemble(cfg: DictConfig, data, runs: list[dict]) -> dict:
    from deeptune import trust
    from deeptune.run import ensemble

    splits = ("val", "test") if cfg.test else ("val",)
    ckpts = [Path(r["best_checkpoint"]) for r in runs]
    # The members' configs are this run's: the targets this command named are trusted in them.
    with trust.own_targets(cfg):
        figures = ensemble.evaluate(cfg.ensemble, ckpts, splits, data=data)
    manifest = ensemble.save_manifest(Path(cfg.paths.output_dir), cfg.ensemble, ckpts)
    return {"method": cfg.ensemble, **figures, "manifest": str(manifest)}
