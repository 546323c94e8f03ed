"""`hydra/launcher=joblib`: the plugin's JoblibLauncher, and parallel trials spread over the GPUs.

Every field of the plugin's config is kept (n_jobs, backend, prefer, ...); `trials_per_gpu` and
`preload` are added. The worker processes start with the sweep and import `preload` while the
sweep composes its jobs, and what every job shares is sent once (deeptune_joblib_launcher
._workers). On a machine with GPUs each worker process runs on one of them (._gpus); without one
nothing else changes.
"""

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_search_path import ConfigSearchPath
from hydra.core.config_store import ConfigStore
from hydra.plugins.search_path_plugin import SearchPathPlugin
from hydra.types import HydraContext, TaskFunction
from hydra_plugins.hydra_joblib_launcher import joblib_launcher
from hydra_plugins.hydra_joblib_launcher.config import JobLibLauncherConf
from omegaconf import DictConfig

from deeptune.errors import ConfigError

from . import _workers
from ._gpus import OnGpu, visible_devices

# What a deeptune trial imports before it trains (~11 s of a sweep's first trial on the 2-core
# machine, slowed): scikit-learn's data sets and splits, torch, lightning, torchmetrics, the
# training code. `hydra.launcher.preload=[]` starts the workers bare.
# deeptune.data.datamodule first: it loads scikit-learn without pandas (deeptune.data.scikit).
PRELOAD = (
    "deeptune.data.datamodule",
    "sklearn.datasets",
    "lightning.pytorch",
    "torchmetrics",
    "deeptune.run.fit",
    "deeptune.models.module",
)


@dataclass
class GpuJoblibLauncherConf(JobLibLauncherConf):
    _target_: str = "hydra_plugins.deeptune_joblib_launcher.launcher.GpuJoblibLauncher"
    # Worker processes that share one GPU: slot s of a sweep runs on GPU s // trials_per_gpu.
    trials_per_gpu: Any = 1  # Any: a bad value gets deeptune's one-line error, not OmegaConf's
    # Modules each worker process imports as it starts, while the sweep composes its jobs.
    preload: Any = field(default_factory=lambda: list(PRELOAD))


# The module, not its class: Hydra's plugin scan would list a class imported here as a plugin again.
class GpuJoblibLauncher(joblib_launcher.JoblibLauncher):
    def __init__(self, trials_per_gpu: Any = 1, preload: Any = PRELOAD, **joblib: Any) -> None:
        super().__init__(**joblib)  # the rest goes to joblib.Parallel, as in the plugin
        self.trials_per_gpu = trials_per_gpu
        self.preload = preload
        self.workers = None  # the sweep's worker processes, from setup on

    def setup(
        self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig
    ) -> None:
        per_gpu = self.trials_per_gpu
        if isinstance(per_gpu, bool) or not isinstance(per_gpu, int) or per_gpu < 1:
            raise ConfigError("hydra.launcher.trials_per_gpu", per_gpu, "an integer >= 1")
        if devices := visible_devices():
            wanted = ((config or {}).get("trainer") or {}).get("devices")
            if self.joblib.get("n_jobs") != 1 and _many(wanted):
                raise ConfigError(
                    "trainer.devices",
                    wanted,
                    "hydra/launcher=joblib runs each parallel trial on one GPU: use "
                    "trainer.devices=1, or hydra.launcher.n_jobs=1 for multi-GPU trials",
                )
            task_function = OnGpu(task_function, devices, per_gpu)
        preload = self.preload or ()
        if not _names(preload):
            raise ConfigError("hydra.launcher.preload", preload, "a list of module names")
        super().setup(hydra_context=hydra_context, task_function=task_function, config=config)
        # Not with GPUs: CUDA fixes its device list when first asked, and an import may ask
        # before the worker's first job has set CUDA_VISIBLE_DEVICES (._gpus).
        self.workers = _workers.Workers(self.joblib, () if devices else tuple(preload))

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Any:
        return _workers.launch(self, self.workers, job_overrides, initial_job_idx)


def _names(modules) -> bool:
    return (
        isinstance(modules, Sequence)
        and not isinstance(modules, str)
        and all(isinstance(m, str) for m in modules)
    )


def _many(devices) -> bool:
    """Whether Lightning's `devices` asks for more than one device (2, -1, [0, 1], "0,1")."""
    if isinstance(devices, bool):
        return False
    if isinstance(devices, int):
        return devices > 1 or devices == -1
    if isinstance(devices, str):
        return (
            "," in devices.strip(",")
            or devices.strip() == "-1"
            or (devices.strip().isdigit() and int(devices) > 1)
        )
    return isinstance(devices, Sequence) and len(devices) > 1


class JoblibChoice(SearchPathPlugin):
    """Makes `hydra/launcher=joblib` this launcher. The plugin stores its own config under that
    name when Hydra's plugin scan runs it, and the scan runs every plugin module in folder order
    (again if it was imported before), so a store at import time would lose to it in a wheel
    install (hydra_joblib_launcher sorts after deeptune_*). Search-path plugins run after the
    scan and before any config is composed. (A joblib.yaml in deeptune's configs would be
    matched against the plugin's schema, Hydra 1.1's deprecated automatic schema matching: a
    warning on every run, and no new field.)"""

    def manipulate_search_path(self, search_path: ConfigSearchPath) -> None:
        ConfigStore.instance().store(
            group="hydra/launcher", name="joblib", node=GpuJoblibLauncherConf, provider="deeptune"
        )
