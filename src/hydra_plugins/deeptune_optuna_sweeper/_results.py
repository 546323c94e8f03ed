"""What a sweep reports: trial counts, optimization_results.yaml and the study's closing lines."""

import os
import shlex
import threading
from collections import Counter
from pathlib import Path

import optuna
import yaml
from optuna.trial import FrozenTrial, TrialState
from rich.console import Console

from deeptune import extras

from ._space import SearchSpace

STATES = ("complete", "pruned", "fail", "interrupted", "surplus", "running", "waiting")
COUNTED = ("complete", "pruned", "fail")  # the trials that count towards n_trials


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
    # A killed sweep never leaves half a file; the pid and thread: two sweeps may share a folder
    # (in one process too: a sweep per thread).
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    tmp.write_text(yaml.safe_dump(results, sort_keys=False))
    os.replace(tmp, path)


def command(space: SearchSpace, params: dict) -> list[str]:
    """A trial's overrides, to run it alone (an hparams_search preset sets hydra.mode=MULTIRUN)."""
    return [*space.overrides(params), "hydra.mode=RUN"]


def print_study(study: optuna.Study, path: Path, storage: str) -> None:
    """The study's counts, and where to browse it. The best trials follow once the multirun
    ends, as after every sweep (deeptune.sweeps.summary)."""
    console = Console()
    tally = ", ".join(f"{n} {state}" for state, n in counts(study).items() if n)
    line = f"study {study.study_name}: {tally or 'no trials'}; results in {path}"
    console.print(line, soft_wrap=True, markup=False)
    browse = f"browse it: optuna-dashboard {shlex.quote(storage)}"
    if not extras.installed("dashboard"):
        browse += f"   ({extras.install_hint('dashboard')})"
    console.print(browse, soft_wrap=True, markup=False)
