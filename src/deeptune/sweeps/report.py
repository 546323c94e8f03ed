"""Sweep report: a finished Hydra multirun folder -> report.md, PNG plots and a console table.

    deeptune-report multirun/<date>/<time> [--metric test/acc] [--out FOLDER] [--top 5]

Only what the jobs left on disk is read (.hydra/overrides.yaml, config.yaml, metrics.json) plus,
for an Optuna sweep, optimization_results.yaml and the study it names: the report works on any
sweep folder, copied from another machine included, and never imports torch. A multi-objective
sweep (optimized_metric lists several) also gets its Pareto front, a table and a plot.
"""

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from rich.box import SIMPLE_HEAD
from rich.console import Console, Group
from rich.table import Table
from rich.text import Text
from scipy import stats

from deeptune import tasks
from deeptune.errors import fail
from deeptune.outputs import read_run, read_yaml
from deeptune.sweeps import plots

IGNORED = ("hydra.", "optuna.")  # the launcher's and the sweeper's plumbing, not hyper-parameters
# The jobs table's order after the metric; failed and the rest last.
STATE_RANK = {"completed": 0, "pruned": 1, "interrupted": 2}
STUDY_STATES = {"COMPLETE": "completed", "PRUNED": "pruned", "FAIL": "failed"}
RESULTS = "optimization_results.yaml"  # what hydra/sweeper=optuna writes into the sweep folder


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="deeptune-report", description=__doc__.splitlines()[0])
    add = parser.add_argument
    add("dir", type=Path, metavar="DIR", help="a sweep folder, e.g. multirun/<date>/<time>")
    add("--metric", metavar="SPLIT/NAME", help="e.g. test/acc (default: optimized_metric)")
    add("--out", type=Path, metavar="FOLDER", help="for report.md and the PNGs (default: DIR)")
    add("--top", type=int, default=5, metavar="N", help="rows printed to the console (5)")
    args = parser.parse_args(argv)

    try:
        sweep = load(args.dir.resolve(), args.metric)
    except SweepFolderError as err:
        fail(str(err))
    df, varied, metric, direction = sweep.df, sweep.varied, sweep.metric, sweep.direction
    study, results, others, objectives = sweep.study, sweep.results, sweep.others, sweep.objectives
    agg = aggregate(df, varied, direction)
    front = pareto_front(results, varied)

    out = (args.out or sweep.folder).resolve()
    out.mkdir(parents=True, exist_ok=True)
    figures = plots.draw_all(df, varied, metric, direction, agg is not None, study, out)
    # The front is drawn in the objectives' own plane: --metric may name another figure.
    if front is not None and len(objectives) == 2 and metric in objectives:
        figures += plots.pareto(df, front, metric, others, objectives, results["direction"], out)
    ordered = sort_jobs(df, direction)
    jobs_view = view_jobs(ordered, varied, metric, others)
    every = view_metrics(sweep.jobs, ordered["job"])
    hint = "\n".join(filter(None, [continuing(df, study), elsewhere(df, study)])) or None
    report = (jobs_view, agg, figures, hint, front, every)
    path = write_report(out, sweep.folder, df, varied, metric, direction, *report)
    print_top(sweep, agg, args.top, path, hint, front)


class SweepFolderError(ValueError):
    """The folder is no sweep, or its jobs do not hold the metric asked for."""


@dataclass
class Sweep:
    """A sweep folder read back: what the report and the summary a multirun ends with
    (deeptune.sweeps.summary) are made of."""

    folder: Path
    jobs: list[dict]  # read_jobs
    objectives: list[str]  # optimized_metric: one, or several
    metric: str  # what the jobs are ranked by
    others: list[str]  # the other objectives of a multi-objective sweep
    direction: str  # max or min
    results: dict  # optimization_results.yaml of an Optuna sweep, else {}
    study: object  # its Optuna study, None without one
    df: pd.DataFrame  # job_table
    varied: list[str]  # the keys whose value differs between jobs


def load(folder: Path, metric: str | None = None) -> Sweep:
    """Read a sweep folder; `metric`: rank by this one instead of optimized_metric."""
    jobs = read_jobs(folder)
    if not jobs:
        raise SweepFolderError(
            f"{folder} is not a multirun folder: no job folders with .hydra/overrides.yaml"
        )
    # what the sweep optimised: one metric, or several objectives
    objectives = tasks.objectives(jobs[0]["config"].get("optimized_metric", "val/acc"))
    metric = metric or objectives[0]
    split, _, name = metric.partition("/")
    if metric not in tasks.RUN_FIGURES and (split not in tasks.SPLITS or not name):
        figures = ", ".join(tasks.RUN_FIGURES)
        raise SweepFolderError(
            f"--metric={metric} is invalid: must be <split>/<name>, e.g. test/acc, or {figures}"
        )
    results = (read_yaml(folder / RESULTS) if (folder / RESULTS).is_file() else None) or {}
    study = load_study(folder, results)
    others = [k for k in objectives if k != metric] if len(objectives) > 1 else []
    df, varied = job_table(jobs, metric, study, others)
    done = df[df["state"].eq("completed")]
    if len(done) and done["value"].isna().all():
        raise SweepFolderError(f"no completed job has {metric} in its metrics.json")

    directions = {
        k: v for job in jobs for k, v in ((job["metrics"] or {}).get("directions") or {}).items()
    }
    direction = tasks.objective_mode(metric, directions)
    if study is not None and metric in objectives and len(study.directions) == len(objectives):
        chosen = study.directions[objectives.index(metric)]
        direction = "max" if chosen.name == "MAXIMIZE" else "min"
    return Sweep(folder, jobs, objectives, metric, others, direction, results, study, df, varied)


def read_jobs(sweep: Path) -> list[dict]:
    """Every job folder (a child holding .hydra/overrides.yaml), in job-number order."""
    dirs = [p for p in sweep.glob("*") if (p / ".hydra" / "overrides.yaml").is_file()]
    dirs.sort(key=lambda p: (not p.name.isdigit(), int(p.name) if p.name.isdigit() else 0, p.name))
    return [read_job(p) for p in dirs]


def read_job(path: Path) -> dict:
    """A job's records (deeptune.outputs.read_run), its overrides as {key: value}."""
    run = read_run(path)
    overrides = {}
    for item in run["overrides"]:
        key, _, value = item.partition("=")
        name = key.lstrip("+~")
        if not name.startswith(IGNORED):
            overrides[name] = "(removed)" if key.startswith("~") else parse(value)
    job = int(path.name) if path.name.isdigit() else path.name
    return {**run, "job": job, "overrides": overrides}


def parse(value: str):
    """'0.001' -> 0.001, '4' -> 4; anything else stays a string (adam, true, [256,128])."""
    for kind in (int, float):
        try:
            return kind(value)
        except ValueError:
            pass
    return value


def load_study(sweep: Path, results: dict):
    """The Optuna study named in optimization_results.yaml (`results`); None without one or if
    unreadable."""
    if not results:
        return None
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = str(results.get("storage") or "")
    if storage.startswith("sqlite:///"):
        db = Path(storage.removeprefix("sqlite:///").split("?")[0])
        if not db.is_file():  # a moved or copied sweep folder: the URL names the old place
            db = sweep / "optuna.db"
            if not db.is_file():  # sqlite would quietly create an empty database
                print(f"warning: {storage} not found; using metrics.json only", file=sys.stderr)
                return None
            storage = f"sqlite:///{db}"
    try:
        return optuna.load_study(study_name=results.get("study_name"), storage=storage)
    except Exception as err:  # whatever the storage raises, the folders still make a report
        print(f"warning: Optuna study not read ({err}); using metrics.json only", file=sys.stderr)
        return None


def job_table(jobs: list[dict], metric: str, study, others=()) -> tuple[pd.DataFrame, list]:
    """A row per job (job, parameters..., value, the other objectives, state, duration_s,
    epochs); the varied keys."""
    trials = {t.number: t for t in study.trials} if study is not None else {}
    retried = {t.user_attrs.get("retry_of") for t in trials.values()}
    rows = []
    for job in jobs:
        m = job["metrics"]
        row = {"job": job["job"], **job["overrides"]}
        row["value"] = tasks.objective_value(m or {}, metric)
        row.update({key: tasks.objective_value(m or {}, key) for key in others})
        row["state"] = "failed" if m is None else m.get("status", "completed")
        row["duration_s"], row["epochs"] = (m or {}).get("duration_s"), (m or {}).get("epochs")
        if (trial := trials.get(job["job"])) is not None:
            # The study knows what the sweeper decided, e.g. of a job killed before its metrics;
            # a job that says it was interrupted was, whatever a stopped sweep left in the study.
            state = study_state(trial, retried)
            if row["state"] != "interrupted" or state in ("completed", "pruned"):
                row["state"] = state
            if row["duration_s"] is None and trial.duration is not None:
                row["duration_s"] = trial.duration.total_seconds()
        rows.append(row)
    keys = list(dict.fromkeys(k for job in jobs for k in job["overrides"]))
    columns = ["job", *keys, "value", *others, "state", "duration_s", "epochs"]
    df = pd.DataFrame(rows, columns=columns)
    df["value"] = df["value"].astype(float)
    # repr() so that lists, NaN (a key missing from some jobs) and mixed types all compare.
    varied = [k for k in keys if df[k].map(repr).nunique() > 1]
    return df, varied


def study_state(trial, retried: set) -> str:
    """A trial's state in the report's words. A FAIL that a stopped sweep abandoned (flagged
    interrupted, or retried since: a stale one is failed before it can be flagged) is
    interrupted: it did not fail, and the sweep runs it again."""
    abandoned = trial.user_attrs.get("interrupted") or trial.number in retried
    if trial.state.name == "FAIL" and abandoned:
        return "interrupted"
    return STUDY_STATES.get(trial.state.name, trial.state.name.lower())


def continuing(df: pd.DataFrame, study) -> str | None:
    """How to continue the interrupted jobs, None when there are none."""
    n = int(df["state"].eq("interrupted").sum())
    if not n:
        return None
    how = (
        f"with the same hydra.sweeper.storage and hydra.sweeper.study_name={study.study_name}: "
        "the study runs them again"
        if study is not None
        else "it continues in this folder, keeps the finished jobs and continues the interrupted "
        "ones from their checkpoints/last.ckpt"
    )
    return f"{n} interrupted (stopped, not failed): to continue, run the same command again, {how}"


def elsewhere(df: pd.DataFrame, study) -> str | None:
    """Which of the study's trials ran in another folder than this one (a sweep on another
    machine sharing its database: every sweep of a study on one machine runs in its folder)."""
    if study is None:
        return None
    here = set(df["job"])
    ran = ("COMPLETE", "PRUNED")
    away = [t.number for t in study.trials if t.state.name in ran and t.number not in here]
    if not away:
        return None
    listed = ", ".join(map(str, away[:10])) + (", ..." if len(away) > 10 else "")
    return f"{len(away)} trial(s) of study {study.study_name} ran in another folder: {listed}"


def sort_jobs(df: pd.DataFrame, direction: str) -> pd.DataFrame:
    """Completed jobs best first, then pruned, interrupted, then failed and the rest; ties in job
    order."""
    rank = df["state"].map(STATE_RANK).fillna(len(STATE_RANK))
    ordered = df.assign(_rank=rank).sort_values(
        ["_rank", "value"], ascending=[True, direction == "min"], na_position="last", kind="stable"
    )
    return ordered.drop(columns="_rank")


def aggregate(df: pd.DataFrame, varied: list, direction: str) -> pd.DataFrame | None:
    """Jobs equal in every varied key but `seed`, one row each: n, mean, std, 95% t-interval,
    the jobs' numbers.

    None unless some configuration has two or more seeds.
    """
    keys = [k for k in varied if k != "seed"]
    done = df[df["state"].eq("completed") & df["value"].notna()]
    if "seed" not in varied or done.empty:
        return None
    by = keys or (lambda _: "all")  # only the seed varied: one configuration
    grouped = done.groupby(by, dropna=False, sort=False)
    agg = grouped["value"].agg(n="count", mean="mean", std="std")
    agg["jobs"] = grouped["job"].agg(list)  # the jobs behind each configuration
    if agg["n"].max() < 2:
        return None
    half = stats.t.ppf(0.975, agg["n"] - 1) * agg["std"] / np.sqrt(agg["n"])
    agg = agg.assign(lo=agg["mean"] - half, hi=agg["mean"] + half)
    agg = agg.sort_values("mean", ascending=direction == "min", kind="stable")
    return agg.reset_index() if keys else agg.reset_index(drop=True)


def show(value, spec: str = "g") -> str:
    """A table cell: floats in `spec`, a missing value as '-', anything else as it is."""
    if pd.isna(value):
        return "-"
    return format(value, spec) if isinstance(value, float) else str(value)


def pareto_front(results: dict, varied: list) -> pd.DataFrame | None:
    """The Pareto front the sweeper wrote (optimization_results.yaml's best_trials): a row per
    trial (job, the varied parameters, each objective); None for a single-objective sweep."""
    if "best_trials" not in results:
        return None
    objectives = results.get("objectives") or []
    rows = []
    for trial in results["best_trials"]:
        params = {k: trial["params"].get(k) for k in varied if k in trial["params"]}
        values = dict(zip(objectives, trial["values"], strict=True))
        rows.append({"job": trial["number"], **params, **values})
    return pd.DataFrame(rows, columns=["job", *varied, *objectives])


def view_jobs(df: pd.DataFrame, varied: list, metric: str, others=()) -> pd.DataFrame:
    """The jobs table as strings, shared by report.md and the console."""
    view = pd.DataFrame({"job": df["job"].map(str)})
    for key in varied:
        view[key] = df[key].map(show)
    view[metric] = df["value"].map(lambda v: show(v, ".4f"))
    for key in others:
        view[key] = df[key].map(lambda v: show(v, ".4g"))
    view["state"] = df["state"]
    view["duration_s"] = df["duration_s"].map(lambda v: show(v, ".1f"))
    view["epochs"] = df["epochs"].map(lambda v: show(v, ".0f"))
    return view


def view_metrics(jobs: list[dict], order) -> pd.DataFrame | None:
    """Every val and test metric of each job that has them (the `metrics` group's included), in
    the jobs table's order; None when no job has any."""
    by_job = {job["job"]: job["metrics"] or {} for job in jobs}
    splits = [s for s in ("val", "test") if any(m.get(s) for m in by_job.values())]
    if not splits:
        return None
    names = {
        s: tasks.display_order(n for m in by_job.values() for n in m.get(s) or {}) for s in splits
    }
    rows = []
    for job in order:
        m = by_job[job]
        if any(m.get(s) for s in splits):
            cells = {
                f"{s}/{n}": show((m.get(s) or {}).get(n, np.nan), ".4f")
                for s in splits
                for n in names[s]
            }
            rows.append({"job": str(job), **cells})
    return pd.DataFrame(rows)


def view_agg(agg: pd.DataFrame, metric: str) -> pd.DataFrame:
    view = agg.drop(columns=["n", "mean", "std", "lo", "hi", "jobs"]).map(show)
    view["n"] = agg["n"].map(str)
    mean_std = [
        f"{m:.4f}" + ("" if pd.isna(s) else f" ± {s:.4f}") for m, s in agg[["mean", "std"]].values
    ]
    view[f"{metric} mean ± std"] = mean_std
    view["95% CI"] = [f"[{lo:.4f}, {hi:.4f}]" for lo, hi in agg[["lo", "hi"]].values]
    view.loc[agg["n"] < 2, "95% CI"] = "-"  # one seed: no spread, no interval
    return view


def markdown(view: pd.DataFrame) -> list[str]:
    """A GitHub markdown table (pandas' to_markdown needs tabulate, which we do not depend on)."""
    cells = [list(map(str, view.columns)), *view.astype(str).values.tolist()]
    rows = ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in cells]
    return [rows[0], "|" + " --- |" * len(view.columns), *rows[1:]]


def write_report(
    out, sweep, df, varied, metric, direction, jobs_view, agg, figures, hint, front=None, every=None
) -> Path:
    counts = df["state"].value_counts()
    states = {s: 0 for s in ("completed", "pruned", "failed")} | counts.to_dict()
    best = "higher" if direction == "max" else "lower"
    lines = [
        "# Sweep report",
        "",
        f"- folder: `{sweep}`",
        f"- jobs: {len(df)} ({', '.join(f'{s} {n}' for s, n in states.items())})",
        f"- metric: `{metric}`, direction: {direction} ({best} is better)",
        f"- varied: {', '.join(f'`{k}`' for k in varied) or 'nothing'}",
        *(f"- {line}" for line in (hint or "").splitlines()),
        "",
        "## Jobs, best first",
        "",
        *markdown(jobs_view),
    ]
    if front is not None:
        lines += ["", f"## Pareto front ({len(front)} trials no other beats on every objective)"]
        view = front.map(lambda v: show(v, ".4g"))
        for key in front.columns.intersection(list(tasks.RUN_FIGURES)):
            view[key] = front[key].map(lambda v: show(v, ".6g"))  # a parameter count in full
        lines += ["", *markdown(view)]
    if agg is not None:
        lines += ["", "## Configurations over seeds, best first", ""]
        lines += markdown(view_agg(agg, metric))
    if every is not None:
        lines += ["", "## Every metric, in the jobs' order", "", *markdown(every)]
    lines += ["", "## Plots", ""] + [f"![{title}]({file})" for title, file in figures]
    if not figures:
        lines.append("No completed job, nothing to plot.")
    path = out / "report.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def print_top(sweep: Sweep, agg, top: int, path: Path, hint: str | None, front=None) -> None:
    lines = [best_table(sweep, None, top)]
    if agg is not None:
        lines.append(best_table(sweep, agg, top))
    if front is not None:
        lines.append(f"Pareto front: trials {', '.join(map(str, front['job']))}")
    lines += [*([hint] if hint else []), f"report: {path}"]
    print_lines(lines)


def print_lines(lines: list) -> None:
    """Tables at the console's width; text lines whole (paths and commands stay one line to
    copy), none read as rich markup (an override such as [relu,tanh])."""
    console = Console()
    for line in lines:
        if isinstance(line, str):
            console.print(line, soft_wrap=True, markup=False, highlight=False)
        else:
            console.print(line)


def best_table(sweep: Sweep, agg: pd.DataFrame | None, top: int) -> Group:
    """The best `top` jobs, or with `agg` (aggregate) the best configurations over seeds, as a
    title line and a console table. Each row's varied keys are one `key=value ...` column that
    folds at the console's width: whole names fit in 80 columns however many keys a sweep
    varies, and read as a command line takes them."""
    better = "higher" if sweep.direction == "max" else "lower"
    table = Table(box=SIMPLE_HEAD, header_style="bold", show_edge=False, pad_edge=False)
    if agg is None:
        ordered = sort_jobs(sweep.df, sweep.direction)
        shown = ordered.head(top)
        title = f"best {len(shown)} of {len(ordered)} jobs by {sweep.metric} ({better} is better)"
        _jobs_rows(table, sweep, shown)
    else:
        shown = agg.head(top)
        many = "s" if len(agg) > 1 else ""
        title = f"best {len(shown)} of {len(agg)} configuration{many} by {sweep.metric}, "
        title += f"mean ± std over seeds ({better} is better)"
        _configs_rows(table, sweep, shown)
    return Group(Text(title), table)


def _jobs_rows(table: Table, sweep: Sweep, shown: pd.DataFrame) -> None:
    table.add_column("job", no_wrap=True)
    for key in [sweep.metric, *sweep.others]:
        table.add_column(key, justify="right", no_wrap=True)
    states = not shown["state"].eq("completed").all()  # a column only where it says something
    if states:
        table.add_column("state", no_wrap=True)
    table.add_column("overrides", overflow="fold")
    for _, row in shown.iterrows():
        cells = [str(row["job"]), show(row["value"], ".4f")]
        # a parameter count in full
        cells += [show(row[k], ".6g" if k in tasks.RUN_FIGURES else ".4g") for k in sweep.others]
        cells += [row["state"]] if states else []
        table.add_row(*map(Text, [*cells, overrides_text(row, sweep.varied)]))


def _configs_rows(table: Table, sweep: Sweep, shown: pd.DataFrame) -> None:
    table.add_column("jobs", overflow="fold")
    table.add_column(sweep.metric, justify="right", no_wrap=True)
    table.add_column("n", justify="right", no_wrap=True)
    table.add_column("overrides", overflow="fold")
    keys = [k for k in sweep.varied if k != "seed"]
    for _, row in shown.iterrows():
        spread = "" if pd.isna(row["std"]) else f" ± {row['std']:.4f}"
        jobs = ",".join(map(str, row["jobs"]))
        cells = [jobs, f"{row['mean']:.4f}{spread}", str(row["n"]), overrides_text(row, keys)]
        table.add_row(*map(Text, cells))


def overrides_text(row: pd.Series, keys: list[str]) -> str:
    """`key=value ...` of `keys` as a command line takes them (a key the job lacks left out)."""
    given = [key for key in keys if isinstance(row[key], str) or pd.notna(row[key])]
    return " ".join(f"{key}={show(row[key], '.4g')}" for key in given) or "-"


if __name__ == "__main__":
    main()
