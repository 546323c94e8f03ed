"""The settings of `hydra/sweeper=optuna`, registered with Hydra's ConfigStore, and the
`hydra/sweeper/sampler=<name>` groups.

Two schemas are accepted: deeptune's (`sampler: tpe`, `sampler_args: {...}`, `pruner: median`,
`pruner_args: {...}`) and the official hydra-optuna-sweeper's, which lightning-hydra-template
uses (`sampler: {_target_: optuna.samplers.TPESampler, seed: 1234, n_startup_trials: 10}`, or
a `hydra/sweeper/sampler=<name>` group; a pruner node likewise). Hydra's plugin scan imports this
module at every start, single runs included, so it imports nothing heavy: Optuna classes are
named by their dotted paths and loaded only when a sweep runs.
"""

from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore
from hydra.errors import CompactHydraException

from deeptune.sweeps.study import PRUNERS  # noqa: F401  (the contract with the trials)

# The official plugin's sampler groups (motpe went in Optuna 4: tpe does multi-objective) and
# Optuna 4's NSGA-III, each with Optuna's own defaults for the arguments people tune, so that
# hydra.sweeper.sampler.<argument>=... needs no '+'; any other argument takes a '+'.
SAMPLER_NODES = {
    "tpe": {"n_startup_trials": 10, "n_ei_candidates": 24},
    "random": {},
    "grid": {},  # the grid is the search space, which must be discrete
    "cmaes": {"n_startup_trials": 1, "sigma0": None, "use_separable_cma": False},
    "gp": {"n_startup_trials": 10, "deterministic_objective": False},
    "qmc": {"qmc_type": "sobol", "scramble": False},
    "nsgaii": {"population_size": 50, "mutation_prob": None, "crossover_prob": 0.9},
    "nsgaiii": {"population_size": 50, "mutation_prob": None, "crossover_prob": 0.9},
}
SAMPLERS = {
    "tpe": "optuna.samplers.TPESampler",
    "random": "optuna.samplers.RandomSampler",
    "grid": "optuna.samplers.GridSampler",
    "cmaes": "optuna.samplers.CmaEsSampler",
    "gp": "optuna.samplers.GPSampler",
    "qmc": "optuna.samplers.QMCSampler",
    "nsgaii": "optuna.samplers.NSGAIISampler",
    "nsgaiii": "optuna.samplers.NSGAIIISampler",
}
# Optuna imports these only when the sampler runs, so a missing one would fail mid-sweep:
# sampler -> the extra of deeptune that installs it (deeptune.extras).
SAMPLER_EXTRAS = {"cmaes": "cmaes"}

DIRECTIONS = {"minimize": "minimize", "min": "minimize", "maximize": "maximize", "max": "maximize"}


class SweepError(CompactHydraException):
    """A sweep that cannot start or go on; Hydra prints the message alone, no traceback."""


@dataclass
class OptunaSweeperConf:
    _target_: str = "hydra_plugins.deeptune_optuna_sweeper.sweeper.OptunaSweeper"
    # Hydra builds a plugin with instantiate(), which would build a `sampler: {_target_: ...}`
    # node too: the sweeper builds it itself, one seeded sampler per trial.
    _recursive_: bool = False
    # hydra/sweeper/sampler=<name> puts that group's node into `sampler`; none by default
    defaults: list[Any] = field(default_factory=lambda: ["_self_", {"sampler": None}])
    # a name (tpe, random, grid, cmaes, gp, qmc, nsgaii, nsgaiii) or a node
    # {_target_: optuna.samplers.<Class>, <argument>: ...}; sampler_args are passed to it too
    sampler: Any = "tpe"
    sampler_args: dict[str, Any] = field(default_factory=dict)
    # minimize / maximize (min / max), or a list of them, one per objective (optimized_metric
    # as a list); null: optimized_mode, and each other objective's own better direction
    direction: Any = None
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
    # none, median, percentile, hyperband, successive_halving, or a node
    # {_target_: optuna.pruners.<Class>, <argument>: ...}; pruner_args are passed to it too
    pruner: Any = "none"
    pruner_args: dict[str, Any] = field(default_factory=dict)
    max_failure_rate: float = 0.25  # stop when failed / finished trials exceeds this
    # key -> override syntax, e.g. {"optimizer.lr": "tag(log, interval(1e-4, 1e-1))"}
    params: dict[str, Any] = field(default_factory=dict)
    # a dotted path to `f(cfg: DictConfig, trial: optuna.Trial) -> None`, called for each trial
    # after `params` are sampled: what it suggests becomes overrides too (a conditional space)
    custom_search_space: str | None = None


def sampler_node(s: OptunaSweeperConf) -> dict:
    """hydra.sweeper.sampler as a node, {_target_: ..., <argument>: ...}, sampler_args in it.

    sampler_args win over the node's own arguments: a hydra/sweeper/sampler group's node holds
    Optuna's defaults, which `sampler_args.n_startup_trials=5` must still change."""
    node = {"_target_": SAMPLERS.get(s.sampler)} if isinstance(s.sampler, str) else s.sampler
    return {**node, **s.sampler_args}


def sampler_name(node: dict) -> str | None:
    """tpe, grid, ... for a node of one of those classes; None for another Optuna sampler."""
    return next((name for name, path in SAMPLERS.items() if path == node.get("_target_")), None)


store = ConfigStore.instance()
store.store(group="hydra/sweeper", name="optuna", node=OptunaSweeperConf, provider="deeptune")
for _name, _args in SAMPLER_NODES.items():
    _node = {"_target_": SAMPLERS[_name], "seed": None, **_args}
    store.store(group="hydra/sweeper/sampler", name=_name, node=_node, provider="deeptune")
