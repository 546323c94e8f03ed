"""The settings of `hydra/sweeper=optuna`, registered with Hydra's ConfigStore.

Hydra's plugin scan imports this module at every start, single runs included, so it imports
nothing heavy: Optuna classes are named by their dotted paths and loaded only when used.
"""

from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore
from hydra.errors import CompactHydraException

from deeptune.sweeps.study import PRUNERS  # noqa: F401  (the contract with the trials)

SAMPLERS = {
    "tpe": "optuna.samplers.TPESampler",
    "random": "optuna.samplers.RandomSampler",
    "grid": "optuna.samplers.GridSampler",
    "cmaes": "optuna.samplers.CmaEsSampler",
    "gp": "optuna.samplers.GPSampler",
    "qmc": "optuna.samplers.QMCSampler",
}
# Optuna imports these only when the sampler runs, so a missing one would fail mid-sweep.
SAMPLER_NEEDS = {"cmaes": ["cmaes"], "gp": ["torch", "scipy"], "qmc": ["scipy"]}

DIRECTIONS = {"minimize": "minimize", "min": "minimize", "maximize": "maximize", "max": "maximize"}


class SweepError(CompactHydraException):
    """A sweep that cannot start or go on; Hydra prints the message alone, no traceback."""


@dataclass
class OptunaSweeperConf:
    _target_: str = "hydra_plugins.deeptune_optuna_sweeper.sweeper.OptunaSweeper"
    sampler: str = "tpe"  # tpe, random, grid, cmaes, gp, qmc
    sampler_args: dict[str, Any] = field(default_factory=dict)  # passed to the Optuna sampler
    direction: str | None = None  # minimize / maximize (min / max); null: optimized_mode
    n_trials: int = 20  # finished trials (complete, pruned, failed) in the whole study
    n_jobs: int | None = (
        None  # trials per batch, run by hydra/launcher; null: the launcher's n_jobs
    )
    seed: int | None = None  # trial n is sampled with a seed drawn from (seed, n)
    storage: str | None = None  # null: sqlite:///<sweep dir>/optuna.db
    study_name: str | None = None  # null: <job name>-<date>-<time>; set it to resume or share
    # Sweeps that share a study: each running trial's heartbeat is recorded every
    # heartbeat_interval seconds; one silent for grace_period seconds (its sweep is gone) is
    # retried by another sweep.
    heartbeat_interval: int = 10
    grace_period: int = 60
    pruner: str = "none"  # none, median, percentile, hyperband, successive_halving
    pruner_args: dict[str, Any] = field(default_factory=dict)  # passed to the Optuna pruner
    max_failure_rate: float = 0.25  # stop when failed / finished trials exceeds this
    # key -> override syntax, e.g. {"optimizer.lr": "tag(log, interval(1e-4, 1e-1))"}
    params: dict[str, Any] = field(default_factory=dict)


ConfigStore.instance().store(
    group="hydra/sweeper", name="optuna", node=OptunaSweeperConf, provider="deeptune"
)
