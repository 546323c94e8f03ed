"""What every experiment shares: its description, its sweeps' results as DataFrames, mean ± std
tables, figures and the report.md writer.

Results are read from what the jobs left on disk (config.yaml, metrics.json, csv/metrics.csv),
through deeptune.sweeps.report.read_jobs, so an analysis never needs the runs' processes.
"""

import functools
import json
import math
import os
import platform
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from matplotlib.figure import Figure

from deeptune.sweeps.report import markdown, read_jobs

BUDGETS = ("tiny", "small", "full")
SPLITS = ("train", "val", "test")
DPI = 100
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@dataclass(frozen=True)
class Sweep:
    """One `python train.py -m experiment=<name> ...` run of an experiment.

    `overrides` apply at every budget (on top of the experiment's yaml); `budgets` adds the
    budget's own (fewer seeds, epochs, grid points); a budget mapped to None skips the sweep.
    `serial`: run the jobs one after another in one process (for sweeps of very short jobs,
    where starting parallel workers costs more than it saves).
    """

    name: str
    what: str
    overrides: tuple[str, ...] = ()
    budgets: dict[str, tuple[str, ...] | None] = field(default_factory=dict)
    serial: bool = False

    def runs_at(self, budget: str) -> bool:
        return self.budgets.get(budget, ()) is not None

    def args(self, budget: str) -> list[str]:
        return [*self.overrides, *(self.budgets.get(budget) or ())]


@dataclass(frozen=True)
class Experiment:
    """An experiment: configs/experiment/<name>.yaml, its sweeps and its analysis."""

    name: str
    title: str
    summary: str  # what it runs, in one line (deeptune-lab list)
    claim: str
    sweeps: tuple[Sweep, ...]
    analyze: Callable[["Context"], "Report"]

    def sweeps_at(self, budget: str) -> list[Sweep]:
        return [s for s in self.sweeps if s.runs_at(budget)]


@dataclass
class SweepRun:
    """A sweep as it ran: its folder, the train.py command and the lab's record of the run."""

    sweep: Sweep
    dir: Path
    command: str
    record: dict


@dataclass
class Context:
    """What an analysis gets: the experiment, its folder, the budget and its sweeps' results."""

    experiment: Experiment
    out: Path
    budget: str
    command: str
    runs: dict[str, SweepRun]
    _jobs: dict = field(default_factory=dict)

    def jobs(self, sweep: str = "main") -> pd.DataFrame:
        if sweep not in self._jobs:
            run = self.runs.get(sweep)
            self._jobs[sweep] = load_jobs(run.dir) if run else pd.DataFrame()
        return self._jobs[sweep]


# ---------------------------------------------------------------------------------------------
# Reading a sweep folder


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
        hydra_file = path / ".hydra" / "hydra.yaml"
        if hydra_file.is_file():
            hydra = yaml.load(hydra_file.read_text(), Loader=_Loader) or {}
            choices = hydra.get("hydra", {}).get("runtime", {}).get("choices", {})
            row.update({k: v for k, v in choices.items() if "/" not in k and k != "hydra"})
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


# ---------------------------------------------------------------------------------------------
# Numbers into words and tables


def num(value, digits: int = 3) -> str:
    """0.9722 -> '0.972', 1.8e-10 -> '1.8e-10', NaN -> 'n/a'."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return str(value)
    value = float(value)
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    if value != 0 and (abs(value) < 10 ** -(digits - 1) or abs(value) >= 1e4):
        return f"{value:.2g}"
    if abs(value) >= 100:
        return f"{value:.0f}"
    return f"{value:.{digits}f}"


def pm(mean, std, digits: int = 3) -> str:
    """'0.972 ± 0.004' (just the mean for a single run)."""
    if std is None or (isinstance(std, float) and math.isnan(std)):
        return num(mean, digits)
    spread = f"{std:.{digits}f}" if std == 0 or std >= 10**-digits / 2 else f"{std:.1g}"
    mean_text = num(mean, digits)
    if "e" in mean_text:  # a ratio spanning decades: the spread in the same notation
        spread = f"{std:.2g}"
    return f"{mean_text} ± {spread}"


def mean_std(df: pd.DataFrame, by: list[str], columns: dict[str, str], digits: int = 3):
    """Rows grouped by `by` (in order of appearance): n and each column as 'mean ± std' (over
    the finite values; 'n/a' when none), headed by its label in `columns`."""
    rows = []
    for key, group in df.groupby(by, sort=False, dropna=False):
        key = key if isinstance(key, tuple) else (key,)
        row = {b: show(k) for b, k in zip(by, key, strict=True)}
        row["n"] = str(len(group))
        for column, label in columns.items():
            values = pd.to_numeric(group[column], errors="coerce")
            values = values[np.isfinite(values)]
            if values.empty:
                row[label] = "n/a"
            else:
                std = values.std() if len(values) > 1 else math.nan
                row[label] = pm(values.mean(), std, digits)
        rows.append(row)
    return pd.DataFrame(rows)


def show(value) -> str:
    """A table key: 0.01 -> '0.01', 4.0 -> '4', 'adam' -> 'adam'."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e6:
        return str(int(value))
    return f"{value:g}" if isinstance(value, float) else str(value)


def mean_pm(values: pd.Series) -> str:
    """'mean ± std' of a column's values, NaN left out; 'n/a' when there are none."""
    values = values.dropna()
    if values.empty:
        return "n/a"
    return num(values.mean()) + (f" ± {num(values.std())}" if len(values) > 1 else "")


def stats(df: pd.DataFrame, by: str | list[str], column: str) -> pd.DataFrame:
    """mean, std, n of `column` over the rows of each group, NaN (a failed job) left out of the
    mean but counted in `runs`."""
    values = pd.to_numeric(df[column], errors="coerce").replace([np.inf, -np.inf], np.nan)
    grouped = values.groupby([df[b] for b in ([by] if isinstance(by, str) else by)], sort=False)
    return pd.DataFrame(
        {"mean": grouped.mean(), "std": grouped.std(), "n": grouped.count(), "runs": grouped.size()}
    )


def seeds_phrase(df: pd.DataFrame) -> str:
    n = df["seed"].nunique() if "seed" in df and len(df) else 0
    return f"{n} seed{'s' if n != 1 else ''}"


# ---------------------------------------------------------------------------------------------
# Figures


def figure(width: float = 5.5, height: float = 3.6, ncols: int = 1):
    fig = Figure(figsize=(width * ncols if ncols > 1 else width, height))
    axes = fig.subplots(1, ncols)
    return fig, axes


def band(ax, x, mean, std, label=None, **kwargs):
    """A line with markers and a shaded ± std band."""
    x, mean, std = np.asarray(x, float), np.asarray(mean, float), np.asarray(std, float)
    (line,) = ax.plot(x, mean, marker="o", ms=3, label=label, **kwargs)
    std = np.nan_to_num(std)
    ax.fill_between(x, mean - std, mean + std, color=line.get_color(), alpha=0.2, lw=0)
    return line


def mean_curves(df: pd.DataFrame, by: str, column: str) -> dict:
    """{group: (epochs, mean, std)} of a per-epoch column over each group's jobs."""
    out = {}
    for key, group in df.groupby(by, sort=False):
        frames = [c[column] for c in map(curves, group["path"]) if column in c]
        if not frames:
            continue
        stacked = pd.concat(frames, axis=1)
        out[key] = (stacked.index.to_numpy(), stacked.mean(axis=1), stacked.std(axis=1))
    return out


# ---------------------------------------------------------------------------------------------
# The report


class Report:
    """report.md of one experiment: claim, verdict, tables, figures, how it was produced."""

    def __init__(self, ctx: Context):
        self.ctx = ctx
        self.sections: list[str] = []
        self.verdict = ""
        self.figures: list[str] = []

    @classmethod
    def of(cls, ctx: Context, df: pd.DataFrame, verdict) -> "Report":
        """A report on `df` (one row per job): its verdict, then the results heading."""
        rep = cls(ctx)
        rep.verdict = verdict(df)
        rep.heading(f"Results (mean ± std over {seeds_phrase(df)})")
        return rep

    def text(self, *lines: str) -> None:
        self.sections += [*lines, ""]

    def heading(self, title: str) -> None:
        self.sections += [f"## {title}", ""]

    def table(self, view: pd.DataFrame, caption: str | None = None) -> None:
        if caption:
            self.sections += [caption, ""]
        if view.empty:
            self.sections += ["(no completed job)", ""]
            return
        self.sections += [*markdown(view.astype(str)), ""]

    def figure(self, fig: Figure, name: str, title: str) -> None:
        fig.tight_layout()
        fig.savefig(self.ctx.out / name, dpi=DPI)
        self.figures.append(name)
        self.sections += [f"![{title}]({name})", ""]

    def write(self, wall_s: float | None = None) -> Path:
        ctx, exp = self.ctx, self.ctx.experiment
        runs = list(ctx.runs.values())
        records = [r.record for r in runs if r.record]
        date = max((r.get("finished") or r.get("started") or "" for r in records), default="")
        machine = next((r["machine"] for r in records if r.get("machine")), machine_info(0))
        total = sum(ctx.jobs(name).shape[0] for name in ctx.runs)
        lines = [
            f"# {exp.title}",
            "",
            f"**Claim.** {exp.claim}",
            "",
            f"**Verdict** (computed from the numbers below). {self.verdict}",
            "",
            *self.sections,
            "## How this was produced",
            "",
            f"- command: `{ctx.command}`",
            f"- budget: `{ctx.budget}`; date: {date or 'n/a'}; machine: {machine}",
        ]
        if wall_s is not None:
            lines.append(f"- wall time of the sweeps: {wall_s:.0f} s; jobs: {total}")
        lines.append(
            "- sweeps (each through `train.py`, so launchers, resume and the report apply):"
        )
        for run in runs:
            lines.append(f"  - {run.sweep.what}: `{run.command}`")
        lines += [
            "- per-job results: `runs/<sweep>/<job>/` (metrics.json, csv/metrics.csv, "
            "config.yaml); `deeptune-report runs/<sweep>` makes the generic sweep report",
            "",
        ]
        path = ctx.out / "report.md"
        path.write_text("\n".join(lines))
        summary = {
            "name": exp.name,
            "title": exp.title,
            "claim": exp.claim,
            "verdict": self.verdict,
            "budget": ctx.budget,
            "date": date,
            "machine": machine,
            "command": ctx.command,
            "wall_s": wall_s,
            "figures": self.figures,
        }
        (ctx.out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
        return path


def machine_info(jobs: int, threads: int | None = None) -> str:
    """'Linux x86_64, 2 CPUs, torch 2.13.0, 2 jobs at once with 1 thread each'."""
    import importlib.metadata as md

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    try:
        torch = f", torch {md.version('torch')}"
    except md.PackageNotFoundError:
        torch = ""
    text = f"{platform.system()} {platform.machine()}, {cores} CPUs{torch}"
    if jobs:
        threads = threads or max(1, (cores or 1) // jobs)
        text += f", {jobs} job{'s' if jobs > 1 else ''} at once with {threads} thread"
        text += "s each" if threads > 1 else " each"
    return text


def write_index(out: Path) -> Path:
    """<out>/README.md: every report present, with its claim and verdict."""
    summaries = []
    for file in sorted(out.glob("*/summary.json")):
        try:
            summaries.append(json.loads(file.read_text()))
        except json.JSONDecodeError:
            continue
    from deeptune.lab.experiments import NAMES

    order = {name: i for i, name in enumerate(NAMES)}
    summaries.sort(key=lambda s: order.get(s["name"], len(order)))
    lines = [
        "# The lab",
        "",
        "Each practice of the training-practice literature as a runnable experiment: a sweep "
        "through `train.py`, a table of mean ± std over seeds, plots, and a verdict computed "
        "from the numbers. Re-run one with `deeptune-lab run <name>`, on your own data with "
        "`deeptune-lab run <name> data=<yours>`.",
        "",
        "| experiment | claim | budget | date |",
        "| --- | --- | --- | --- |",
    ]
    for s in summaries:
        claim = s["claim"].replace("|", "\\|")
        lines.append(
            f"| [{s['name']}]({s['name']}/report.md) | {claim} | {s['budget']} | "
            f"{(s.get('date') or '')[:10]} |"
        )
    lines += ["", "## Verdicts", ""]
    for s in summaries:
        lines += [f"**[{s['name']}]({s['name']}/report.md).** {s['verdict']}", ""]
    budgets = sorted({s["budget"] for s in summaries})
    outs = sorted({m.group(1) for s in summaries if (m := re.search(r"--out (\S+)", s["command"]))})
    if len(budgets) == 1 and len(outs) == 1:
        lines += [
            f"All of them again: `deeptune-lab run all --budget {budgets[0]} --out {outs[0]}` "
            "(finished sweeps are skipped; `--force` reruns them). Each report names its own "
            "commands, date and machine.",
            "",
        ]
    walls = [s["wall_s"] for s in summaries if s.get("wall_s") is not None]
    machines = sorted(
        {
            s["machine"].split(", 1 job")[0].split(", 2 jobs")[0]
            for s in summaries
            if s.get("machine")
        }
    )
    if walls:
        lines.append(
            f"Sweeps' wall time, all reports: {sum(walls) / 60:.1f} min"
            + (f" on {'; '.join(machines)}" if machines else "")
            + "."
        )
        lines.append("")
    path = out / "README.md"
    path.write_text("\n".join(lines))
    return path


# ---------------------------------------------------------------------------------------------
# Small helpers for the analyses


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


def geomean(values) -> float:
    """The geometric mean of the positive finite values (ratios spanning decades); 0 if any is 0;
    NaN if none."""
    v = pd.to_numeric(pd.Series(list(values)), errors="coerce").to_numpy(float)
    v = v[np.isfinite(v)]
    if not len(v):
        return math.nan
    if (v <= 0).any():
        return 0.0
    return float(np.exp(np.log(v).mean()))


def failures(df: pd.DataFrame, mask) -> str:
    """'2/3 runs failed (NaN loss)' style count for the rows in `mask`, '' when none failed."""
    rows = df[mask]
    bad = rows[~rows["state"].eq("completed")]
    return f"{len(bad)}/{len(rows)}" if len(bad) else ""


def listing(items: list[str]) -> str:
    """'a', 'a and b', 'a, b and c'."""
    items = [i for i in items if i]
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def evaluate(path: str | Path, ckpt: str = "last", splits=("train", "val")) -> dict[str, dict]:
    """{split: {acc, loss}} of a job's checkpoints/<ckpt>.ckpt on whole splits in eval mode (no
    dropout, batch norm's running statistics), the job's config rebuilt through deeptune's
    builders.

    The per-epoch training accuracy in csv/metrics.csv is a running average taken while the
    weights change and dropout is on; this is the figure to set against validation accuracy.
    {} when the job left no such checkpoint or is not a classification.
    """
    path = Path(path)
    file = path / "checkpoints" / f"{ckpt}.ckpt"
    config = path / "config.yaml"
    if not (file.is_file() and config.is_file()):
        return {}
    import torch
    from omegaconf import OmegaConf

    from deeptune import builders, ensemble

    torch.set_num_threads(1)
    cfg = OmegaConf.create(yaml.load(config.read_text(), Loader=_Loader))
    table = builders.source(cfg)
    if table.task != "classification":
        return {}
    dm = builders.datamodule(cfg, table)
    dm.setup()
    outputs = ensemble.member_outputs(cfg, str(file), dm, splits)
    out = {}
    for s in splits:
        y = dm.tensors[s][1].cpu()
        out[s] = {
            "acc": float((outputs[s].argmax(-1) == y).float().mean()),
            "loss": float(torch.nn.functional.cross_entropy(outputs[s], y)),
        }
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


def plural(n, word: str) -> str:
    """'1 epoch', '5 epochs', '2.5 epochs'."""
    return f"{show(n) if isinstance(n, float) else n} {word}{'' if n == 1 else 's'}"
