"""The settings of `hydra/sweeper=optuna`, registered with Hydra's ConfigStore.

Hydra's plugin scan imports this module at every start, single runs included, so it imports
nothing heavy: Optuna classes are named by their dotted paths and loaded only when used.
"""

import inspect
import logging
from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore
from hydra.errors import CompactHydraException
from hydra.utils import get_class

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

PRUNERS = {
    "none": "optuna.pruners.NopPruner",
    "median": "optuna.pruners.MedianPruner",
    "percentile": "optuna.pruners.PercentilePruner",
    "hyperband": "optuna.pruners.HyperbandPruner",
    "successive_halving": "optuna.pruners.SuccessiveHalvingPruner",
}
DIRECTIONS = {"minimize": "minimize", "min": "minimize", "maximize": "maximize", "max": "maximize"}

# Storage keeps a study's trials but not its pruner: the sweeper writes the pruner's name and
# arguments here, and each trial's job rebuilds it (deeptune.sweeps.pruning).
PRUNER_ATTR = "deeptune_pruner"


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
    seed: int | None = None  # the sampler's seed
    storage: str | None = None  # null: sqlite:///<sweep dir>/optuna.db
    study_name: str | None = None  # null: <job name>-<date>-<time>; set it to resume
    pruner: str = "none"  # none, median, percentile, hyperband, successive_halving
    pruner_args: dict[str, Any] = field(default_factory=dict)  # passed to the Optuna pruner
    max_failure_rate: float = 0.25  # stop when failed / finished trials exceeds this
    # key -> override syntax, e.g. {"optimizer.lr": "tag(log, interval(1e-4, 1e-1))"}
    params: dict[str, Any] = field(default_factory=dict)


ConfigStore.instance().store(
    group="hydra/sweeper", name="optuna", node=OptunaSweeperConf, provider="deeptune"
)


def make_pruner(spec: dict | None):
    """The Optuna pruner for {"name": ..., "args": {...}} (None: no pruning)."""
    spec = spec or {"name": "none", "args": {}}
    name, args = spec["name"], dict(spec.get("args") or {})
    if name not in PRUNERS:
        raise SweepError(f"hydra.sweeper.pruner={name!r} is invalid: one of {', '.join(PRUNERS)}")
    cls = get_class(PRUNERS[name])
    # Presets carry arguments for the pruners that take them (n_startup_trials, ...); a pruner
    # drops those meant for another one, but a name no pruner knows is a typo.
    known = inspect.signature(cls).parameters
    anywhere = {
        p for path in PRUNERS.values() for p in inspect.signature(get_class(path)).parameters
    }
    if typos := sorted(set(args) - anywhere):
        raise SweepError(
            f"hydra.sweeper.pruner_args={args} for pruner={name}: no pruner takes {typos}"
        )
    if dropped := sorted(set(args) - set(known)) if name != "none" else []:
        logging.getLogger(__name__).warning("pruner=%s ignores pruner_args %s", name, dropped)
    args = {k: v for k, v in args.items() if k in known}
    try:
        return cls(**args)
    except (TypeError, ValueError) as err:
        raise SweepError(f"hydra.sweeper.pruner_args={args} for pruner={name}: {err}") from None
