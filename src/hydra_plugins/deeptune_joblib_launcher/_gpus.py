"""Which GPU a worker process of hydra/launcher=joblib runs on.

loky reuses its worker processes from job to job, and CUDA reads CUDA_VISIBLE_DEVICES once, when
a process first uses CUDA; so a GPU belongs to a worker process, not to a job. At its first job a
worker claims the lowest free slot of the sweep (a lock file in <sweep>/.gpu_slots, held until
the process exits: a worker that loky retires frees its slot for the next one) and runs on GPU
slot // trials_per_gpu of the list; past the end of the list (more workers than GPUs x
trials_per_gpu) it starts again from the first GPU.
"""

import logging
import os
import sys
from itertools import count
from pathlib import Path

import cloudpickle

log = logging.getLogger(__name__)
SLOTS = ".gpu_slots"  # in the sweep folder
DRIVERS = ("/proc/driver/nvidia", "/dev/kfd")  # NVIDIA's, AMD's (ROCm reads the variable too)
_worker: dict = {}  # this process's slot and GPU, once claimed


def visible_devices() -> list[str]:
    """The GPUs the trials share: the sweep's own CUDA_VISIBLE_DEVICES, else all torch sees."""
    listed = os.environ.get("CUDA_VISIBLE_DEVICES")
    if listed is not None:
        return [d.strip() for d in listed.split(",") if d.strip()]
    # Importing torch costs a sweep ~2 s before its first job: not on a machine without a driver.
    if sys.platform == "linux" and not any(map(os.path.exists, DRIVERS)):
        return []
    import torch

    return [str(i) for i in range(torch.cuda.device_count())]


def gpu_of(slot: int, devices: list[str], trials_per_gpu: int) -> str:
    return devices[slot // trials_per_gpu % len(devices)]


def claim_slot(folder: Path) -> int:
    """The lowest slot no live process holds; this process holds it until it exits."""
    import fcntl  # POSIX; imported here so that Hydra's plugin scan still imports this on Windows

    folder.mkdir(parents=True, exist_ok=True)
    for slot in count():
        fd = os.open(folder / f"{slot}.lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        _worker["lock"] = fd  # never closed: the lock is released when the process ends
        return slot


class OnGpu:
    """The sweep's task function, run on the GPU of the worker process that runs the job."""

    def __init__(self, task, devices: list[str], trials_per_gpu: int):
        self.task, self.devices, self.trials_per_gpu = task, devices, trials_per_gpu
        self.sweep_pid = os.getpid()

    def __getstate__(self):
        # The task goes to the worker as bytes, unpickled once CUDA_VISIBLE_DEVICES is set:
        # importing its module may already ask CUDA for its devices (torch.cuda.is_available()
        # does), and then the list is fixed.
        return {**self.__dict__, "task": cloudpickle.dumps(self.task)}

    def __call__(self, cfg):
        if os.getpid() == self.sweep_pid:  # one job at a time: joblib runs it in this process
            return self.task(cfg)
        self._take_gpu()
        return cloudpickle.loads(self.task)(cfg)

    def _take_gpu(self) -> None:
        from hydra.core.hydra_config import HydraConfig

        hydra = HydraConfig.get()
        if "gpu" not in _worker:
            # From where the sweep started: with hydra.job.chdir=true a relative sweep.dir
            # would name a folder under each job's own, and every worker would get slot 0.
            sweep = Path(hydra.runtime.cwd) / hydra.sweep.dir
            slot = claim_slot(sweep / SLOTS)
            _worker.update(slot=slot, gpu=gpu_of(slot, self.devices, self.trials_per_gpu))
            os.environ["CUDA_VISIBLE_DEVICES"] = _worker["gpu"]
        log.info(
            "job %s on GPU %s (CUDA_VISIBLE_DEVICES=%s): worker slot %d, %d per GPU of %s",
            hydra.job.num,
            _worker["gpu"],
            os.environ["CUDA_VISIBLE_DEVICES"],
            _worker["slot"],
            self.trials_per_gpu,
            ",".join(self.devices),
        )
