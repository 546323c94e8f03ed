"""report.md of one experiment: claim, verdict, tables, figures, how it was produced; and
summary.json, which the lab's index reads."""

import json
import os
import platform
from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure

from deeptune.lab.experiment import Context
from deeptune.lab.text import seeds_phrase
from deeptune.sweeps.report import markdown

DPI = 100


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
