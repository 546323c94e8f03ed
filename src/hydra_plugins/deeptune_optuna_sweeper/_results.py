"""What a sweep reports: trial counts, optimization_results.yaml and the closing table."""

import os
from collections import Counter
from pathlib import Path

import optuna
import yaml
from optuna.trial import FrozenTrial, TrialState
from rich.console import Console
from rich.table import Table

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


def write(study: optuna.Study, path: Path, n_trials: int, storage: str, space: SearchSpace):
    """optimization_results.yaml: the best trial (null while none completed) and the counts."""
    trials = study.get_trials(deepcopy=False)
    kind = kinds(trials)
    best = study.best_trial if any(t.state == TrialState.COMPLETE for t in trials) else None
    results = {
        "best_trial": best.number if best else None,
        "best_value": best.value if best else None,
        "best_params": dict(best.params) if best else None,
        # the best trial as a command line: python train.py <best_overrides>
        "best_overrides": space.overrides(best.params) if best else None,
        "direction": study.direction.name.lower(),
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


def print_table(study: optuna.Study, metric: str, path: Path) -> None:
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    maximize = study.direction == optuna.study.StudyDirection.MAXIMIZE
    top = sorted(complete, key=lambda t: t.value, reverse=maximize)[:TOP]
    keys = list(dict.fromkeys(k for t in top for k in t.params))
    table = Table(title=f"best trials by {metric}")
    for column in ("trial", metric, *keys):
        table.add_column(column, justify="right" if column != "trial" else "left")
    for t in top:
        params = (_short(t.params[k]) if k in t.params else "-" for k in keys)
        table.add_row(str(t.number), f"{t.value:.4f}", *params)
    console = Console()
    if not console.is_terminal:  # a log file: as wide as the table, not 80 columns
        wide = console.measure(table, options=console.options.update_width(1000)).maximum
        console = Console(width=max(console.width, wide))
    if top:
        console.print(table)
    tally = ", ".join(f"{n} {state}" for state, n in counts(study).items() if n)
    line = f"study {study.study_name}: {tally or 'no trials'}; results in {path}"
    console.print(line, soft_wrap=True)


def _short(value) -> str:
    return f"{value:.4g}" if isinstance(value, float) else format_value(value)
