"""What a sweep reports: trial counts, optimization_results.yaml and the closing table."""

import os
import shlex
from collections import Counter
from pathlib import Path

import optuna
import yaml
from optuna.trial import FrozenTrial, TrialState
from rich.console import Console
from rich.table import Table

from deeptune import extras

from ._space import SearchSpace, format_value

STATES = ("complete", "pruned", "fail", "interrupted", "surplus", "running", "waiting")
COUNTED = ("complete", "pruned", "fail")  # the trials that count towards n_trials
TOP = 10  # trials in the closing table


def kinds(trials: list[FrozenTrial]) -> dict[int, str]:
    """Trial number -> its state, with two kinds of FAIL apart from failures: interrupted (its
    sweep stopped, or went silent, before the job ended; its params run again as the trial whose
    `retry_of` names it) and surplus (asked for when n_trials were already under way)."""
    # A trial failed for a stale heartbeat is finished before anyone can flag it (Optuna's
    # storage refuses attributes on a finished trial): its retry is what marks it.
    retried = {t.user_attrs["retry_of"] for t in trials if "retry_of" in t.user_attrs}

    def kind(t: FrozenTrial) -> str:
        if t.state == TrialState.FAIL and t.user_attrs.get("surplus"):
            return "surplus"
        if t.state == TrialState.FAIL and (t.user_attrs.get("interrupted") or t.number in retried):
            return "interrupted"
        return t.state.name.lower()

    return {t.number: kind(t) for t in trials}


def counts(study: optuna.Study) -> dict[str, int]:
    found = Counter(kinds(study.get_trials(deepcopy=False)).values())
    return {state: found[state] for state in STATES}


def finished(study: optuna.Study) -> int:
    """The trials that count towards n_trials: completed, pruned or failed (not interrupted)."""
    c = counts(study)
    return sum(c[state] for state in COUNTED)


def directions(study: optuna.Study) -> list[str]:
    return [d.name.lower() for d in study.directions]


def write(
    study: optuna.Study,
    path: Path,
    n_trials: int,
    storage: str,
    space: SearchSpace,
    objectives: list[str],
):
    """optimization_results.yaml: the best trial (null while none completed), or for several
    objectives the Pareto front (`best_trials`), and the counts."""
    trials = study.get_trials(deepcopy=False)
    kind = kinds(trials)
    if len(study.directions) > 1:
        best = {
            # the trials no other beats on every objective, each as a command line too
            "best_trials": [
                {
                    "number": t.number,
                    "values": list(t.values),
                    "params": dict(t.params),
                    "overrides": command(space, t.params),
                }
                for t in sorted(study.best_trials, key=lambda t: t.number)
            ],
            "objectives": objectives,
            "direction": directions(study),
        }
    else:
        one = study.best_trial if any(t.state == TrialState.COMPLETE for t in trials) else None
        best = {
            "best_trial": one.number if one else None,
            "best_value": one.value if one else None,
            "best_params": dict(one.params) if one else None,
            # the best trial as a command line: python train.py <best_overrides>
            "best_overrides": command(space, one.params) if one else None,
            "direction": study.direction.name.lower(),
        }
    results = {
        **best,
        "study_name": study.study_name,
        "storage": storage,
        "n_trials": n_trials,
        "trials": counts(study),
        "failures": {
            t.number: str(t.user_attrs.get("error", "?")).splitlines()[0]
            for t in trials
            if kind[t.number] == "fail"
        },
    }
    # A killed sweep never leaves half a file; the pid: two sweeps may share a folder.
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(yaml.safe_dump(results, sort_keys=False))
    os.replace(tmp, path)


def command(space: SearchSpace, params: dict) -> list[str]:
    """A trial's overrides, to run it alone (an hparams_search preset sets hydra.mode=MULTIRUN)."""
    return [*space.overrides(params), "hydra.mode=RUN"]


def print_table(study: optuna.Study, objectives: list[str], path: Path, storage: str) -> None:
    """The best trials by the objective, or the Pareto front of several, best first by the
    first objective; the counts, and where to browse the study."""
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    several = len(study.directions) > 1
    maximize = study.directions[0] == optuna.study.StudyDirection.MAXIMIZE
    shown = study.best_trials if several else complete
    top = sorted(shown, key=lambda t: t.values[0], reverse=maximize)[: None if several else TOP]
    keys = list(dict.fromkeys(k for t in top for k in t.params))
    if several:
        title = f"Pareto front: {' vs '.join(objectives)} ({', '.join(directions(study))})"
    else:
        title = f"best trials by {objectives[0]}"
    table = Table(title=title)
    for column in ("trial", *objectives, *keys):
        table.add_column(column, justify="right" if column != "trial" else "left")
    spec = ".4g" if several else ".4f"  # a parameter count is no fraction
    for t in top:
        params = (_short(t.params[k]) if k in t.params else "-" for k in keys)
        table.add_row(str(t.number), *(format(v, spec) for v in t.values), *params)
    console = Console()
    if not console.is_terminal:  # a log file: as wide as the table, not 80 columns
        wide = console.measure(table, options=console.options.update_width(1000)).maximum
        console = Console(width=max(console.width, wide))
    if top:
        console.print(table)
    tally = ", ".join(f"{n} {state}" for state, n in counts(study).items() if n)
    line = f"study {study.study_name}: {tally or 'no trials'}; results in {path}"
    console.print(line, soft_wrap=True)
    browse = f"browse it: optuna-dashboard {shlex.quote(storage)}"
    if not extras.installed("dashboard"):
        browse += f"   ({extras.install_hint('dashboard')})"
    console.print(browse, soft_wrap=True, markup=False)


def _short(value) -> str:
    return f"{value:.4g}" if isinstance(value, float) else format_value(value)
