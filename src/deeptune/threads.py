"""How many torch threads a job gets: light, so the Optuna sweeper's plugin can share it."""

import os


def cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def launcher_jobs(launcher) -> int:
    """Jobs a Hydra launcher config runs at once: its `n_jobs` (joblib's -1: one per core), or 1."""
    n_jobs = (launcher or {}).get("n_jobs")
    if n_jobs is None:
        return 1
    return int(n_jobs) if n_jobs >= 1 else cores()


def parallel_jobs() -> int:
    """How many jobs this process's Hydra launcher runs at once (1 outside a parallel launcher)."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return 1
    return launcher_jobs(HydraConfig.get().get("launcher"))


def apply_threads(setting: int | str | None) -> None:
    """torch's intra-op threads: `threads=N`, or `auto` = the cores shared by parallel jobs.

    Two jobs that each take every core run several times slower than one thread each.
    """
    import torch

    if setting is None:
        return
    if setting == "auto":
        setting = max(1, cores() // parallel_jobs())
    torch.set_num_threads(int(setting))
