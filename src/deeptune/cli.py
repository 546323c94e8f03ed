"""Entry-point plumbing shared by train and eval: one-line errors, quiet libraries."""

import atexit
import gc
import logging
import os
import sys
import warnings
from collections.abc import Callable

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode

from deeptune.config import check_group_overrides
from deeptune.errors import ConfigError, TrainingError

# Idle OpenMP threads spin before they sleep; with two jobs on two cores the spinning steals the
# other job's core (runs were 3-30x slower). Set before torch loads; a user's own value wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
# At exit the interpreter garbage-collects the ~500k objects torch and lightning leave behind,
# about a second of nothing. Freezing them skips that; registered first, it runs last.
atexit.register(gc.freeze)


def fail(message: str, status: int = 2) -> None:
    print(f"error: {message}", file=sys.stderr)
    sys.exit(status)


def guarded(main: Callable[[], object]) -> Callable[[], object]:
    """Console-script wrapper: reject unknown group choices before Hydra composes anything."""

    def entry():
        try:
            check_group_overrides([a for a in sys.argv[1:] if not a.startswith("-")])
        except ConfigError as err:
            fail(str(err))
        return main()

    return entry


def run_task(task: Callable, cfg) -> object:
    """Run `task(cfg)`; in a single run a ConfigError becomes one line and exit status 2, a
    TrainingError (e.g. a NaN loss) one line and exit status 1.

    In a multirun the error propagates, so the sweeper sees the failed job.
    """
    quiet_libraries()
    try:
        return task(cfg)
    except (ConfigError, TrainingError) as err:
        if HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN:
            raise
        fail(str(err), status=2 if isinstance(err, ConfigError) else 1)


def apply_threads(setting: int | str | None) -> None:
    """torch's intra-op threads: `threads=N`, or `auto` = the cores shared by parallel jobs.

    Two jobs that each take every core run several times slower than one thread each.
    """
    import torch

    if setting is None:
        return
    if setting == "auto":
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
        setting = max(1, (cores or 1) // parallel_jobs())
    torch.set_num_threads(int(setting))


def parallel_jobs() -> int:
    """How many jobs the Hydra launcher runs at once (1 outside a parallel launcher)."""
    if not HydraConfig.initialized():
        return 1
    n_jobs = (HydraConfig.get().get("launcher") or {}).get("n_jobs")
    if n_jobs is None:
        return 1
    return int(n_jobs) if n_jobs >= 1 else os.cpu_count() or 1  # joblib's -1: a job per core


def quiet_libraries() -> None:
    # Lightning announces devices and tips at INFO on every run; the summary says what matters.
    logging.getLogger("lightning.pytorch.utilities.rank_zero").setLevel(logging.WARNING)
    logging.getLogger("lightning.fabric.utilities.rank_zero").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=".*treespec, LeafSpec.*")  # Lightning vs torch 2.13
    # Epoch metrics come from torchmetrics, whose compute() already reduced them across ranks.
    warnings.filterwarnings("ignore", message=".*when logging on epoch level in distributed.*")
    # A NaN loss stops the run with its own message (deeptune.callbacks.StopOnNonFiniteLoss).
    warnings.filterwarnings("ignore", message="Encountered `nan` values in tensor")
