"""What a parallel sweep pays outside its trials, paid once per worker process.

The plugin's launch (hydra_joblib_launcher._core) pickles the sweep's whole state (config
loader, master config, task function, Hydra's singletons) into every job, and each job unpickles
it and composes its config again; the worker processes start at the first job, and each imports
torch, lightning and scikit-learn inside its first trial. Measured on 2 busy cores, per worker:
~1 s between two jobs (loky's gc.collect), 0.6-2.3 s composing, and the imports start only once
the sweep's process has composed every job. Here:
- the workers start when the launcher is set up, before the sweeper composes the jobs, and each
  imports `preload` (joblib's initializer, once per worker process), then freezes what it
  imported out of the garbage collector's walks;
- the shared state travels as one pickle, unpickled once per worker and launch;
- a job whose config the sweeper composed already (deeptune_basic_sweeper's ComposedOnce) gets
  it as it is.
"""

import contextlib
import gc
import importlib
import logging
import os
import uuid
import warnings
from pathlib import Path

import cloudpickle
from hydra.core.hydra_config import HydraConfig
from hydra.core.singleton import Singleton
from hydra.core.utils import configure_log, filter_overrides, run_job, setup_globals
from omegaconf import open_dict

log = logging.getLogger(__name__)
_state: dict = {}  # in a worker: the state of the launch it runs jobs of, by key


def warm_up(modules: tuple[str, ...]) -> None:
    """joblib's initializer: the imports every trial of this worker would pay in its first."""
    for name in modules:
        # A module that fails here fails again in the trial that needs it, with its own error.
        with contextlib.suppress(Exception):
            importlib.import_module(name)
    # loky runs gc.collect() after every job (without psutil, at most once a second), which
    # walks the ~500k objects torch and lightning keep: ~1 s between two jobs on a busy core.
    # Frozen, they are left out of every collection; they live as long as the process anyway.
    if modules:
        gc.freeze()


def ready() -> int:
    return os.getpid()


def run(key: str, shared: bytes, idx: int, overrides, sweep_config):
    """One job in a worker process: the plugin's execute_job, with the state unpickled once."""
    if key not in _state:
        _state.clear()  # a new launch (the next batch of an Optuna sweep): its own state
        _state[key] = cloudpickle.loads(shared)
    hydra_context, config, task_function, singleton_state = _state[key]
    setup_globals()
    Singleton.set_state(singleton_state)
    if sweep_config is None:  # not composed by the sweeper: composed here, as the plugin does
        sweep_config = hydra_context.config_loader.load_sweep_config(config, list(overrides))
    with open_dict(sweep_config):
        sweep_config.hydra.job.id = f"{sweep_config.hydra.job.name}_{idx}"
        sweep_config.hydra.job.num = idx
    HydraConfig.instance().set_config(sweep_config)
    return run_job(
        hydra_context=hydra_context,
        config=sweep_config,
        task_function=task_function,
        job_dir_key="hydra.sweep.dir",
        job_subdir_key="hydra.sweep.subdir",
    )


class Workers:
    """The sweep's worker processes, started at once: each imports `preload` as it starts. The
    launches reuse them (joblib reuses loky's executor while its settings stay the same)."""

    def __init__(self, settings: dict, preload: tuple[str, ...]) -> None:
        from hydra_plugins.hydra_joblib_launcher._core import process_joblib_cfg
        from joblib import Parallel, cpu_count, delayed

        settings = dict(settings, backend="loky")  # as the plugin: threads do not suit Hydra
        process_joblib_cfg(settings)
        settings.update(initializer=warm_up, initargs=(tuple(preload),))
        self.parallel = Parallel(**settings)
        n_jobs = settings.get("n_jobs") or -1
        self.starting = None
        if n_jobs != 1:  # n_jobs=1: joblib runs the jobs in this process, no worker
            n = n_jobs if n_jobs > 0 else cpu_count()
            # A generator: the workers start now, and this returns at once.
            start = Parallel(**settings, return_as="generator_unordered")
            self.starting = start(delayed(ready)() for _ in range(n))

    def __call__(self, jobs) -> list:
        if self.starting is not None:  # started: consumed, so that joblib lets it go
            self.started = sorted(set(self.starting))  # the pids that answered (for tests)
            self.starting = None
        return self.parallel(jobs)

    def __del__(self) -> None:
        # A sweep that never launched (a bad override): joblib stops the workers, and warns
        # that the start-up tasks were cancelled, which is no news here.
        if getattr(self, "starting", None) is not None:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                self.starting.close()


def launch(launcher, workers: Workers, job_overrides, initial_job_idx: int):
    """The plugin's launch (same logs, same JobReturns), on the sweep's workers."""
    from joblib import delayed

    setup_globals()
    configure_log(launcher.config.hydra.hydra_logging, launcher.config.hydra.verbose)
    sweep_dir = Path(str(launcher.config.hydra.sweep.dir))
    sweep_dir.mkdir(parents=True, exist_ok=True)
    settings = ",".join(f"{k}={v}" for k, v in launcher.joblib.items())
    log.info("Joblib.Parallel(%s) is launching %d jobs", settings, len(job_overrides))
    log.info("Launching jobs, sweep output dir : %s", sweep_dir)
    for idx, overrides in enumerate(job_overrides):
        log.info("\t#%d : %s", initial_job_idx + idx, " ".join(filter_overrides(overrides)))
    loader = launcher.hydra_context.config_loader
    take = getattr(loader, "take", None)  # ComposedOnce: the configs its check composed
    configs = [take(launcher.config, list(o)) if take else None for o in job_overrides]
    context = launcher.hydra_context, launcher.config, launcher.task_function
    shared = cloudpickle.dumps((*context, Singleton.get_state()))
    key = uuid.uuid4().hex
    runs = workers(
        delayed(run)(key, shared, initial_job_idx + idx, overrides, config)
        for idx, (overrides, config) in enumerate(zip(job_overrides, configs, strict=True))
    )
    return list(runs)
