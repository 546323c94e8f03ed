"""The sweep report's PNGs: the metric against each parameter, best so far, parameter importance.

Figures are made with matplotlib.figure.Figure rather than pyplot: they render with Agg whatever
backend is configured, never reach pyplot's global list of open figures (so none is left open
when a report runs inside a notebook or a test) and are freed with the last reference.
"""

import re
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator


def draw_all(df, varied, metric, direction, seeds, study, out: Path) -> list[tuple[str, str]]:
    """Write every plot that the data allow into `out`; return (title, file name) pairs."""
    done = df[df["state"].eq("completed") & df["value"].notna()]
    if done.empty:
        return []
    figures = []
    for key in [k for k in varied if k != "seed"] or varied:  # seeds are spread, not a knob
        name = "metric_vs_" + re.sub(r"[^\w.-]", "_", key) + ".png"
        if metric_vs_param(done, key, metric, seeds, out / name) is not None:
            figures.append((f"{metric} vs {key}", name))
    best_so_far(done, metric, direction, out / "best_so_far.png")
    figures.append((f"best {metric} so far", "best_so_far.png"))
    if study is not None and importance(study, out / "param_importance.png") is not None:
        figures.append(("parameter importance (Optuna)", "param_importance.png"))
    return figures


def _save(fig: Figure, path: Path) -> Figure:
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    return fig  # for tests to inspect


def metric_vs_param(done: pd.DataFrame, key: str, metric: str, seeds: bool, path: Path):
    """A scatter for a numeric parameter, a jittered strip per value otherwise; with seeds, the
    mean ± std of the jobs at each value on top."""
    done = done[done[key].notna()]
    if done.empty:
        return None
    y = done["value"]
    numeric = done[key].map(lambda v: isinstance(v, (int, float))).all()
    fig = Figure(figsize=(5, 3.5))
    ax = fig.subplots()
    if numeric:
        x = done[key].astype(float)
        ax.scatter(x, y, alpha=0.6, label="job")
        if _spans_decades(x):  # e.g. a learning rate
            ax.set_xscale("log")
    else:
        labels = sorted(done[key].map(str).unique())
        x = done[key].map(str).map({label: i for i, label in enumerate(labels)})
        jitter = np.random.default_rng(0).uniform(-0.15, 0.15, len(x))  # fixed: same PNG each run
        ax.scatter(x + jitter, y, alpha=0.6, label="job")
        ax.set_xticks(range(len(labels)), labels, rotation=30 if len(labels) > 4 else 0)
        ax.set_xlim(-0.5, len(labels) - 0.5)
    if seeds:
        stats = y.groupby(x.values).agg(["mean", "std"])
        yerr = stats["std"].fillna(0)  # a value with one job: no bar
        ax.errorbar(stats.index, stats["mean"], yerr=yerr, fmt="s", color="k", label="mean ± std")
    ax.set(xlabel=key, ylabel=metric, title=f"{metric} vs {key}")
    ax.legend(fontsize="small")
    return _save(fig, path)


def best_so_far(done: pd.DataFrame, metric: str, direction: str, path: Path) -> Figure:
    numbered = done["job"].map(lambda j: isinstance(j, int)).all()
    x = done["job"] if numbered else np.arange(len(done))  # named job folders: their order
    best = done["value"].cummax() if direction == "max" else done["value"].cummin()
    fig = Figure(figsize=(5, 3.5))
    ax = fig.subplots()
    ax.scatter(x, done["value"], alpha=0.6, label="job")
    ax.step(x, best, where="post", color="C1", label="best so far")
    ax.set(xlabel="job / trial number", ylabel=metric, title=f"best {metric} so far ({direction})")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.legend(fontsize="small")
    return _save(fig, path)


def pareto(df, front, metric, others, objectives, directions, out: Path) -> list[tuple[str, str]]:
    """Two objectives against each other: every completed job, and the Pareto front joined up
    and labelled with its trial numbers."""
    done = df[df["state"].eq("completed") & df["value"].notna()]
    (other,) = others
    better = dict(zip(objectives, directions, strict=True))
    fig = Figure(figsize=(5, 3.5))
    ax = fig.subplots()
    ax.scatter(done[other], done["value"], alpha=0.5, label="trial")
    line = front.sort_values(other)
    ax.plot(line[other], line[metric], "o-", color="C1", label="Pareto front")
    for _, row in line.iterrows():
        ax.annotate(str(row["job"]), (row[other], row[metric]), fontsize="x-small")
    if _spans_decades(done[other].astype(float)):  # e.g. parameter counts
        ax.set_xscale("log")
    ax.set(xlabel=f"{other} ({better[other]})", ylabel=f"{metric} ({better[metric]})")
    ax.set_title("Pareto front")
    ax.legend(fontsize="small")
    _save(fig, out / "pareto_front.png")
    return [(f"Pareto front: {metric} vs {other}", "pareto_front.png")]


def _spans_decades(x) -> bool:
    """More than two decades of positive values: a log axis reads better."""
    return len(x) > 0 and x.min() > 0 and x.max() / x.min() > 100


def importance(study, path: Path) -> Figure | None:
    """fANOVA importance of the study's parameters (mean decrease in impurity if that fails)."""
    from optuna.importance import (
        FanovaImportanceEvaluator,
        MeanDecreaseImpurityImportanceEvaluator,
        get_param_importances,
    )

    complete = [t for t in study.trials if t.state.name == "COMPLETE"]
    if len(study.directions) > 1 or len(complete) < 2 or not any(t.params for t in complete):
        return None
    scores = None
    for evaluator in (FanovaImportanceEvaluator, MeanDecreaseImpurityImportanceEvaluator):
        try:
            scores = get_param_importances(study, evaluator=evaluator(seed=0))
            break
        except Exception as err:  # e.g. too few distinct values for a random forest
            print(f"warning: {evaluator.__name__} failed: {err}", file=sys.stderr)
    if not scores:
        return None
    fig = Figure(figsize=(5, 1 + 0.4 * len(scores)))
    ax = fig.subplots()
    names = list(scores)[::-1]  # most important on top
    ax.barh(names, [scores[n] for n in names])
    ax.set(xlabel="importance", title="parameter importance")
    return _save(fig, path)
