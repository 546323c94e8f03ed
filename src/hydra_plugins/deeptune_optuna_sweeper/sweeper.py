"""`hydra/sweeper=optuna`: Hydra's Sweeper interface; the sweep itself is in _impl.

Hydra's plugin scan imports this module at every start, so Optuna is imported only when a
sweep runs (Hydra skips modules whose names start with an underscore).
"""

import importlib.util
from typing import Any

from hydra.core.config_search_path import ConfigSearchPath
from hydra.core.plugins import Plugins
from hydra.plugins.search_path_plugin import SearchPathPlugin
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf

from deeptune import extras

from .config import (
    DIRECTIONS,
    PRUNERS,
    SAMPLER_EXTRAS,
    SAMPLERS,
    OptunaSweeperConf,
    SweepError,
    sampler_name,
    sampler_node,
)

UPSTREAM = "hydra_plugins.hydra_optuna_sweeper"  # the official plugin, hydra-optuna-sweeper
OFFICIAL_CLASS = f"{UPSTREAM}.optuna_sweeper.OptunaSweeper"


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


def _upstream_installed() -> bool:
    try:
        return importlib.util.find_spec(UPSTREAM) is not None
    except (ImportError, ValueError):
        return False


class OfficialClassPath(SearchPathPlugin):
    """This sweeper under the official plugin's class name, while that plugin is not installed.

    lightning-hydra-template's hparams_search configs, and the official plugin's examples, name
    its class: `hydra.sweeper._target_: hydra_plugins.hydra_optuna_sweeper.optuna_sweeper.
    OptunaSweeper`. That plugin cannot be installed beside deeptune (it pins optuna<3), so those
    files would stop at "Unknown plugin class". Hydra instantiates a plugin by looking its
    `_target_` up in the plugin registry (Plugins.class_name_to_class, filled by its scan of
    hydra_plugins); search-path plugins run after that scan and before any config is composed,
    so this one adds the official name for deeptune's class. The class keeps its own module, so
    the registry still pickles into a launcher's job processes (a submitit requeue, joblib
    workers) and unpickles there without the official module.
    """

    def manipulate_search_path(self, search_path: ConfigSearchPath) -> None:
        if not _upstream_installed():
            Plugins.instance().class_name_to_class.setdefault(OFFICIAL_CLASS, OptunaSweeper)


def _refuse_upstream_plugin() -> None:
    # Both plugins register hydra/sweeper=optuna, and the one Hydra scans last silently wins:
    # when it is this one, say so rather than leave the choice to the order of a folder scan.
    if _upstream_installed():
        raise SweepError(
            "hydra-optuna-sweeper is installed too, and both it and deeptune register "
            "hydra/sweeper=optuna: run `pip uninstall hydra-optuna-sweeper` "
            "(it pins optuna<3 and breaks with SQLAlchemy 2)"
        )


def check_settings(s: OptunaSweeperConf) -> None:
    """Name the bad setting and what is allowed, before anything runs (the arguments of a
    sampler or pruner node are checked against its class when the sweep builds it)."""

    def bad(key: str, allowed: str, *value) -> SweepError:
        value = value[0] if value else getattr(s, key)
        return SweepError(f"hydra.sweeper.{key}={value!r} is invalid: {allowed}")

    _check_node(s.sampler, "sampler", SAMPLERS, "optuna.samplers", bad)
    _check_node(s.pruner, "pruner", PRUNERS, "optuna.pruners", bad)
    name = sampler_name(sampler_node(s))
    if (extra := SAMPLER_EXTRAS.get(name)) and not extras.installed(extra):
        raise bad("sampler", f"it needs the {extra} extra: {extras.install_hint(extra)}")
    node_seed = sampler_node(s).get("seed")
    if node_seed is not None and s.seed is not None and node_seed != s.seed:
        raise bad("seed", f"hydra.sweeper.sampler.seed={node_seed} says otherwise: set one of them")
    d = s.direction
    if not (
        d is None
        or (isinstance(d, str) and d in DIRECTIONS)
        or (isinstance(d, list) and d and all(isinstance(x, str) and x in DIRECTIONS for x in d))
    ):
        raise bad(
            "direction",
            "minimize or maximize (min or max), a list of them (one per objective), or null "
            "for optimized_mode",
        )
    if not isinstance(s.n_trials, int) or s.n_trials < 1:
        raise bad("n_trials", "an integer >= 1")
    if s.n_jobs is not None and (not isinstance(s.n_jobs, int) or s.n_jobs < 1):
        raise bad("n_jobs", "an integer >= 1, or null for the launcher's n_jobs")
    if not 0 <= s.max_failure_rate <= 1:
        raise bad("max_failure_rate", "a number in [0, 1]")
    seed = s.seed if s.seed is not None else node_seed
    if seed is not None and (not isinstance(seed, int) or seed < 0):
        raise bad("seed", "an integer >= 0, or null", seed)
    if not isinstance(s.heartbeat_interval, int) or s.heartbeat_interval < 1:
        raise bad("heartbeat_interval", "an integer >= 1 (seconds)")
    if not isinstance(s.grace_period, int) or s.grace_period <= s.heartbeat_interval:
        raise bad("grace_period", "an integer of seconds > hydra.sweeper.heartbeat_interval")
    if s.custom_search_space is not None and not isinstance(s.custom_search_space, str):
        raise bad("custom_search_space", "a dotted path to a function (cfg, trial) -> None")


def _check_node(value, key: str, names: dict, package: str, bad) -> None:
    """A sampler or pruner: one of `names`, or a node whose _target_ is a class of `package`."""
    if isinstance(value, dict):
        target = value.get("_target_")
        if not (isinstance(target, str) and target.startswith(package + ".")):
            raise bad(f"{key}._target_", f"a class of {package}", target)
    elif value not in names:
        raise bad(key, f"one of {', '.join(names)}, or a node {{_target_: {package}.<Class>}}")
