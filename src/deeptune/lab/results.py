"""Reading a sweep's results: one row per job from what it left on disk (config.yaml,
metrics.json, csv/metrics.csv, read through deeptune.outputs), its per-epoch curves, and the
kept or final weights rebuilt through deeptune.run.saved when an analysis needs them."""

import functools
import math
import re
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from deeptune.sweeps.report import read_jobs
from deeptune.tasks import SPLITS


def flatten(node, prefix: str = "") -> dict:
    """{'model': {'depth': 2}} -> {'model.depth': 2}; lists become their repr."""
    out = {}
    if isinstance(node, dict):
        for key, value in node.items():
            out.update(flatten(value, f"{prefix}{key}."))
        return out
    out[prefix[:-1]] = repr(node) if isinstance(node, list) else node
    return out


def load_jobs(sweep: Path) -> pd.DataFrame:
    """One row per job folder: `job`, `path`, `state` (completed / failed / pruned / missing),
    `reason`, the metrics as `<split>_<name>` (val_acc, test_mse, ...), `epochs`, `best_epoch`,
    `fit_s`, `duration_s`, `grad_ratio` and `grad_verdict` (the gradient-health callback's),
    every resolved config value by its dotted key (model.depth) and each config group's choice
    by its name (optimizer, scheduler, data, model)."""
    rows = []
    for job in read_jobs(sweep) if sweep.is_dir() else []:
        path = sweep / str(job["job"])
        m = job["metrics"] or {}
        row = {"job": job["job"], "path": str(path)}
        row.update(flatten(job["config"]))
        row.update(job["choices"])
        row.update(job["overrides"])
        row["state"] = m.get("status", "completed") if m else "missing"
        row["reason"] = m.get("reason")
        for split in SPLITS:
            for name, value in (m.get(split) or {}).items():
                row[f"{split}_{name}"] = value
        for key in ("epochs", "best_epoch", "fit_s", "duration_s"):
            row[key] = m.get(key) if not isinstance(m.get(key), list) else None
        health = m.get("grad_health") or {}
        row["grad_ratio"] = health.get("grad_ratio_first_last")
        row["grad_verdict"] = health.get("verdict")
        row["metrics"] = m
        rows.append(row)
    return pd.DataFrame(rows)


def curves(path: str | Path) -> pd.DataFrame:
    """A copy of `_curves(path)`, read once per version of the file."""
    file = Path(path) / "csv" / "metrics.csv"
    return _curves(str(path), file.stat().st_mtime_ns if file.is_file() else 0).copy()


@functools.lru_cache(maxsize=512)
def _curves(path: str, version: int) -> pd.DataFrame:
    """A job's per-epoch figures from csv/metrics.csv, indexed by epoch (1 = after the first):
    train_<name> and val_<name> for each logged metric, and `lr` (the first parameter group's
    rate during that epoch). Empty when the job logged nothing."""
    file = Path(path) / "csv" / "metrics.csv"
    if not file.is_file():
        return pd.DataFrame()
    df = pd.read_csv(file)
    if "epoch" not in df or "train/loss" not in df:
        return pd.DataFrame()
    train = df[df["train/loss"].notna()].groupby("epoch").first()
    out = pd.DataFrame(index=train.index.astype(int))
    for column in df.columns:
        split, _, name = column.partition("/")
        if split == "train" and name:
            out[f"train_{name}"] = train[column]
    if "val/loss" in df:
        # The first validation of each training epoch; the evaluations of the best checkpoint
        # after fit come later (with the epoch count as their epoch).
        val = df[df["val/loss"].notna()].groupby("epoch").first()
        for column in df.columns:
            split, _, name = column.partition("/")
            if split == "val" and name:
                out[f"val_{name}"] = val[column].reindex(out.index)
    lr_columns = [c for c in df.columns if c.startswith("lr-")]
    if lr_columns:
        lrs = df[lr_columns[0]].dropna().to_numpy()[: len(out)]
        out["lr"] = np.concatenate([lrs, np.full(len(out) - len(lrs), np.nan)])
    out.index = out.index + 1
    out.index.name = "epoch"
    return out


def layer_order(names: Iterable[str]) -> list[str]:
    """'hidden.10' after 'hidden.2', 'head' last: the order of the net, not of the alphabet."""

    def key(name: str):
        numbers = [int(n) for n in re.findall(r"\d+", name)]
        return (name.startswith("head"), re.sub(r"\d+", "", name), numbers)

    return sorted(names, key=key)


def step0_grad_norms(path: str | Path) -> dict[str, float]:
    """Each layer's gradient norm at the first optimiser step (the gradient-health callback's
    csv rows), in the net's order; {} when the job logged none."""
    file = Path(path) / "csv" / "metrics.csv"
    if not file.is_file():
        return {}
    df = pd.read_csv(file)
    columns = [
        c for c in df.columns if c.startswith("grad_norm/") and not c.endswith("ratio_first_last")
    ]
    rows = df[df[columns].notna().any(axis=1)] if columns else df.iloc[:0]
    if rows.empty:
        return {}
    first = rows.iloc[0]
    norms = {c.split("/", 1)[1]: float(first[c]) for c in columns if pd.notna(first[c])}
    return {name: norms[name] for name in layer_order(norms)}


def step0_ratio(path: str | Path) -> float:
    """First / last layer's gradient norm at the first step; NaN when unknown."""
    norms = step0_grad_norms(path)
    if len(norms) < 2:
        return math.nan
    values = list(norms.values())
    return values[0] / values[-1] if values[-1] > 0 else math.inf


def column(df: pd.DataFrame, name: str, default=np.nan) -> pd.Series:
    """df[name], or a column of `default` when no job has it (e.g. every job failed)."""
    return df[name] if name in df else pd.Series(default, index=df.index)


def completed(df: pd.DataFrame) -> pd.DataFrame:
    return df[df["state"].eq("completed")] if "state" in df else df


def last_epoch(paths: Iterable[str], name: str) -> list[float]:
    """Each job's `name` (e.g. train_acc) at its last epoch; NaN when it logged none."""
    out = []
    for path in paths:
        c = curves(path)
        out.append(float(c[name].iloc[-1]) if name in c and len(c) else math.nan)
    return out


def evaluate(path: str | Path, ckpt: str = "last", splits=("train", "val")) -> dict[str, dict]:
    """{split: {acc, loss}} of a job's checkpoints/<ckpt>.ckpt on whole splits in eval mode (no
    dropout, batch norm's running statistics), the job rebuilt by deeptune.run.saved.

    The per-epoch training accuracy in csv/metrics.csv is a running average taken while the
    weights change and dropout is on; this is the figure to set against validation accuracy.
    {} when the job left no such checkpoint or is not a classification.
    """
    path = Path(path)
    file = path / "checkpoints" / f"{ckpt}.ckpt"
    if not (file.is_file() and (path / "config.yaml").is_file()):
        return {}
    import torch

    from deeptune.metrics import task_metrics
    from deeptune.run.ensemble import member_outputs
    from deeptune.run.saved import load_run

    torch.set_num_threads(1)
    run = load_run(path, ckpt=file)
    dm = run.datamodule
    if dm.task != "classification":
        return {}
    outputs = member_outputs(run.model, dm, splits)
    out = {}
    for s in splits:
        y = dm.tensors[s][1].cpu()
        acc = task_metrics(dm.task, dm.num_outputs)(outputs[s], y)["acc"]
        out[s] = {"acc": float(acc), "loss": float(run.model.loss(outputs[s], y))}
    return out


def final_metrics(paths: Iterable[str]) -> pd.DataFrame:
    """Per job: train_final / val_final (accuracy) and train_loss_final / val_loss_final
    (cross-entropy) of its final weights (last.ckpt) in eval mode; NaN where unknown."""
    rows = []
    for path in paths:
        m = evaluate(path) if path else {}
        rows.append(
            {
                "train_final": m.get("train", {}).get("acc", math.nan),
                "val_final": m.get("val", {}).get("acc", math.nan),
                "train_loss_final": m.get("train", {}).get("loss", math.nan),
                "val_loss_final": m.get("val", {}).get("loss", math.nan),
            }
        )
    return pd.DataFrame(
        rows, columns=["train_final", "val_final", "train_loss_final", "val_loss_final"]
    )
