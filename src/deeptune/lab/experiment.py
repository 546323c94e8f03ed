"""What an experiment is: its sweeps, its analysis, and what the analysis is handed."""

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from deeptune.lab.results import load_jobs

BUDGETS = ("tiny", "small", "full")


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
    analyze: Callable[["Context"], object]  # -> deeptune.lab.report.Report

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
