"""Which sampler proposes each trial's parameters, so that a seeded study never repeats itself.

With `hydra.sweeper.seed`, trial n is sampled by a sampler seeded from (seed, n). The seed of an
Optuna sampler starts one random stream per process: a resumed sweep, or a second sweep process
on the study, would draw that stream again from its start and propose the parameters of trials
0, 1, ... a second time (Optuna asks distributed workers for different seeds). Trial numbers
are unique in a study, so seeds derived from them never repeat, and one process with one seed
still proposes the same trials run after run.

The sampler is set between `ask()` and the first suggest, which is where Optuna 5 samples: a
Trial computes its relative params (CMA-ES, GP, multivariate TPE) lazily at the first suggest,
and independent params at each one, with `study.sampler` as it is then. Only `before_trial`
runs inside ask(), and it is a no-op for tpe / random / cmaes / gp / qmc / nsgaii / nsgaiii (for
any other Optuna sampler, a node's `_target_`, see its own before_trial). Two samplers take the
seed for the order of one sequence that every trial and process must share, and find their
place in it from the study itself: grid (the grid's order; trial n < grid size takes point n,
chosen in before_trial) and qmc (the scramble; a study attribute counts the points taken, not
atomically: two sweeps asking at the same instant may take one point twice). They keep the
seed; qmc's independent sampler, for its first trial, gets the trial's.
"""

import inspect
import warnings
from collections.abc import Callable

import numpy as np
import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution, IntDistribution
from optuna.samplers import RandomSampler

from deeptune.sweeps.study import build, optuna_class

from ._space import SearchSpace
from .config import SweepError, sampler_name, sampler_node


class Sampling:
    """The sampler of hydra.sweeper.sampler (a name with sampler_args, or a node), seeded."""

    def __init__(self, s, space: SearchSpace):
        node = sampler_node(s)
        self.name = sampler_name(node)  # tpe, grid, ...; None for another Optuna sampler
        self.seed = s.seed if s.seed is not None else node.get("seed")
        # Hydra's own flags (the official grid node is `_partial_`) are not the sampler's.
        self.args = {k: v for k, v in node.items() if not k.startswith("_") and k != "seed"}
        node_form = isinstance(s.sampler, dict)
        self.key = "hydra.sweeper.sampler" if node_form else "hydra.sweeper.sampler_args"
        self.grid = space.grid() if self.name == "grid" else None
        try:
            target = optuna_class(node["_target_"], "optuna.samplers", "hydra.sweeper.sampler")
        except ValueError as err:
            raise SweepError(str(err)) from None
        self.cls = _GridSampler if self.grid is not None else target
        self.shared = self._make(self.seed)  # checks the arguments before any trial

    def for_trial(self, number: int):
        if self.seed is None or self.name == "grid":
            return self.shared
        seed = int(np.random.SeedSequence((self.seed, number)).generate_state(1)[0])
        with warnings.catch_warnings():  # "experimental" (qmc) was said once, for `shared`
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            if self.name == "qmc":
                return self._make(self.seed, independent_sampler=RandomSampler(seed))
            return self._make(seed)

    def _make(self, seed, **extra):
        grid = [] if self.grid is None else [self.grid]
        seeded = {"seed": seed} if "seed" in inspect.signature(self.cls).parameters else {}
        try:
            return build(self.cls, self.args, self.key, *grid, **extra, **seeded)
        except ValueError as err:  # an argument the sampler does not take, or a bad value
            raise SweepError(str(err)) from None


def sample(
    study: optuna.Study,
    trial: optuna.Trial,
    space: SearchSpace,
    sampling: Sampling,
    extend: Callable[[optuna.Trial], None] | None = None,
):
    """Give `trial` (just asked, nothing suggested) its params from its own sampler, then those
    that hydra.sweeper.custom_search_space suggests (`extend`)."""
    study.sampler = sampling.for_trial(trial.number)
    for name, dist in space.distributions.items():
        suggest(trial, name, dist)
    if extend is not None:
        extend(trial)


def suggest(trial: optuna.Trial, name: str, dist: BaseDistribution):
    """Trial.suggest_* for a distribution (a queued trial gets its queued value back)."""
    if isinstance(dist, CategoricalDistribution):
        return trial.suggest_categorical(name, dist.choices)
    suggest_number = trial.suggest_int if isinstance(dist, IntDistribution) else trial.suggest_float
    return suggest_number(name, dist.low, dist.high, step=dist.step, log=dist.log)


class _GridSampler(optuna.samplers.GridSampler):
    def after_trial(self, study, trial, state, values) -> None:
        # GridSampler calls Study.stop() once the grid is done, which raises outside
        # Study.optimize(); the sweep counts its trials itself.
        pass
