"""`hydra/sweeper=optuna`: Hydra's Sweeper interface; the sweep itself is in _impl.

Hydra's plugin scan imports this module at every start, so Optuna is imported only when a
sweep runs (Hydra skips modules whose names start with an underscore).
"""

import importlib.util
from typing import Any

from hydra.core.plugins import Plugins
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf

from .config import DIRECTIONS, PRUNERS, SAMPLER_NEEDS, SAMPLERS, OptunaSweeperConf, SweepError


class OptunaSweeper(Sweeper):
    """Ask Optuna for trials, run them with the configured launcher, tell Optuna the results."""

    def __init__(self, **settings: Any) -> None:
        # Plain containers: Optuna stores what it is given, and it cannot store a DictConfig.
        plain = {
            k: OmegaConf.to_container(v) if OmegaConf.is_config(v) else v
            for k, v in settings.items()
        }
        self.settings = OptunaSweeperConf(**plain)
        self.config: DictConfig | None = None
        self.hydra_context: HydraContext | None = None
        self.launcher = None

    def setup(
        self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig
    ) -> None:
        _refuse_upstream_plugin()
        check_settings(self.settings)
        self.config, self.hydra_context = config, hydra_context
        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=hydra_context, task_function=task_function, config=config
        )

    def sweep(self, arguments: list[str]) -> Any:
        from ._impl import run_sweep

        return run_sweep(self, arguments)


def _refuse_upstream_plugin() -> None:
    # Both plugins register hydra/sweeper=optuna, and the one Hydra scans last silently wins:
    # when it is this one, say so rather than leave the choice to the order of a folder scan.
    if importlib.util.find_spec("hydra_plugins.hydra_optuna_sweeper") is not None:
        raise SweepError(
            "hydra-optuna-sweeper is installed too, and both it and deeptune register "
            "hydra/sweeper=optuna: run `pip uninstall hydra-optuna-sweeper` "
            "(it pins optuna<3 and breaks with SQLAlchemy 2)"
        )


def check_settings(s: OptunaSweeperConf) -> None:
    """Name the bad setting and what is allowed, before anything runs."""

    def bad(key: str, allowed: str) -> SweepError:
        return SweepError(f"hydra.sweeper.{key}={getattr(s, key)!r} is invalid: {allowed}")

    if s.sampler not in SAMPLERS:
        raise bad("sampler", "one of " + ", ".join(SAMPLERS))
    missing = [m for m in SAMPLER_NEEDS.get(s.sampler, []) if importlib.util.find_spec(m) is None]
    if missing:
        raise bad("sampler", f"it needs {' and '.join(missing)}: pip install {' '.join(missing)}")
    if s.pruner not in PRUNERS:
        raise bad("pruner", "one of " + ", ".join(PRUNERS))
    if s.direction is not None and s.direction not in DIRECTIONS:
        raise bad("direction", "minimize or maximize (min or max), or null for optimized_mode")
    if not isinstance(s.n_trials, int) or s.n_trials < 1:
        raise bad("n_trials", "an integer >= 1")
    if s.n_jobs is not None and (not isinstance(s.n_jobs, int) or s.n_jobs < 1):
        raise bad("n_jobs", "an integer >= 1, or null for the launcher's n_jobs")
    if not 0 <= s.max_failure_rate <= 1:
        raise bad("max_failure_rate", "a number in [0, 1]")
    if s.seed is not None and (not isinstance(s.seed, int) or s.seed < 0):
        raise bad("seed", "an integer >= 0, or null")
    if not isinstance(s.heartbeat_interval, int) or s.heartbeat_interval < 1:
        raise bad("heartbeat_interval", "an integer >= 1 (seconds)")
    if not isinstance(s.grace_period, int) or s.grace_period <= s.heartbeat_interval:
        raise bad("grace_period", "an integer of seconds > hydra.sweeper.heartbeat_interval")
