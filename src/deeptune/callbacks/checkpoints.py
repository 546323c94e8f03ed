"""Checkpoints written when they are needed, not every time Lightning would write one.

Lightning's ModelCheckpoint writes best.ckpt on every improvement and last.ckpt after every
epoch (≈6.5 ms a file for a small model: a visible share of a run of a few seconds). Here both
callbacks still decide *what* to save exactly as Lightning does (the same hooks, scores and
file names), but hold the checkpoint in memory and write it:

- last.ckpt (`LastCheckpoint`): at an epoch's save point once `every_s` seconds of training
  have passed since the last write, at the end of fit, and when the run is interrupted
  (SIGTERM, Ctrl-C): then the state of the last *finished* epoch is written, so that
  `resume=auto` continues from an epoch boundary and reproduces the uninterrupted run. A
  failed run (NaN loss, an error) writes nothing more: its weights may be the broken ones.
- best.ckpt (`BestCheckpoint`): whenever last.ckpt is written (first, so that the best path
  recorded in last.ckpt names a file that exists and matches), before any other checkpoint
  is saved (Lightning's SLURM requeue checkpoint), at the end of fit and when interrupted.

Holding costs what building the checkpoint and copying its tensors cost (≈2 + 2 ms a save
point for the default MLP on this 2-core machine, against ≈6.5 ms for a write).

What a SIGKILL (or a machine crash) now loses: up to `every_s` seconds of training, and the
best weights found since the last write.

Both fall back to Lightning's own immediate writes where holding a checkpoint is not sound:
several top-k files (save_top_k != 1), `save_last`, or a sharded strategy (FSDP, DeepSpeed)
whose checkpoint is not one dict on rank 0.
"""

import copy
import time
from collections import OrderedDict

import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.strategies import DDPStrategy, SingleDeviceStrategy
from lightning.pytorch.utilities.exceptions import SIGTERMException

from deeptune.errors import ConfigError, Interrupted
from deeptune.signals import in_slurm_job

# The exceptions that stop a run by a signal: Lightning's SIGTERMException (its handler's,
# inside a SLURM job too, where the requeued job continues from last.ckpt), Ctrl-C, and the
# Interrupted of deeptune's own handler (deeptune.signals).
INTERRUPTIONS = (SIGTERMException, KeyboardInterrupt, Interrupted)


def interrupted(err: BaseException) -> bool:
    return isinstance(err, INTERRUPTIONS)


def cpu_copy(value):
    """A checkpoint with every tensor copied to the CPU: later optimiser steps update the model's
    and optimiser's tensors in place, which the state dicts only refer to. The containers are
    rebuilt too (a callback's state may be its live dict); numbers and strings are shared.
    Lightning's apply_to_collection does the same ≈20x slower (its checks for dataclasses,
    ≈10 ms per checkpoint of a small MLP)."""
    kind = type(value)
    if kind in ATOMS:
        return value
    if isinstance(value, torch.Tensor):
        return value.detach().to("cpu", copy=True)
    if kind in (dict, OrderedDict):
        return kind((key, cpu_copy(item)) for key, item in value.items())
    if kind in (list, tuple):
        return kind(cpu_copy(item) for item in value)
    return copy.deepcopy(value)  # anything else (an array, a namedtuple): rare, and kept whole


ATOMS = {int, float, str, bool, bytes, type(None)}


class HeldCheckpoint(ModelCheckpoint):
    """A ModelCheckpoint whose saves are held in memory (the dict Lightning would write, on the
    CPU) until `flush` writes the newest one. Only `_save_checkpoint` is overridden: it is the
    one place every save of Lightning's passes through (top-k, none-monitor, last), and the
    rest of ModelCheckpoint (when to save, best score and path, resume state) stays Lightning's.
    """

    dumping = False  # True while a HeldCheckpoint builds a checkpoint to hold

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.held: tuple[str, dict] | None = None  # (file, checkpoint) not yet written
        self.writes = 0  # files this callback wrote (a test and a benchmark count them)

    def holds(self, trainer) -> bool:
        """Whether saves may wait: one file (save_top_k=1, no save_last) and a strategy whose
        checkpoint is one dict that rank 0 writes."""
        one_file = self.save_top_k == 1 and not self.save_last
        return one_file and type(trainer.strategy) in (SingleDeviceStrategy, DDPStrategy)

    def _save_checkpoint(self, trainer, filepath: str) -> None:
        if not self.holds(trainer):
            self.writes += 1
            return super()._save_checkpoint(trainer, filepath)
        # What trainer.save_checkpoint builds before writing; Lightning has no public call
        # that builds it without writing.
        HeldCheckpoint.dumping = True  # BestCheckpoint.on_save_checkpoint: not another save
        try:
            checkpoint = trainer._checkpoint_connector.dump_checkpoint(self.save_weights_only)
        finally:
            HeldCheckpoint.dumping = False
        self._last_global_step_saved = trainer.global_step  # as ModelCheckpoint's own
        self._last_checkpoint_saved = filepath
        self.hold(trainer, filepath, checkpoint)

    def hold(self, trainer, filepath: str, checkpoint: dict) -> None:
        self.held = (filepath, cpu_copy(checkpoint))

    def flush(self, trainer, barrier: bool = True) -> None:
        """Write the held checkpoint (rank 0 writes; every rank calls this)."""
        if self.held is None:
            return
        filepath, checkpoint = self.held
        trainer.strategy.save_checkpoint(checkpoint, filepath)
        self.held = None
        self.writes += 1
        if barrier:  # not on an exception: another rank may never get here
            trainer.strategy.barrier("HeldCheckpoint.flush")
        if trainer.is_global_zero:
            for logger in trainer.loggers:
                logger.after_save_checkpoint(self)

    def on_train_end(self, trainer, pl_module) -> None:
        super().on_train_end(trainer, pl_module)
        self.flush(trainer)

    def on_exception(self, trainer, pl_module, exception: BaseException) -> None:
        # Not ModelCheckpoint's save_on_exception: that writes the state of the step the run
        # stopped in (mid-epoch, or the NaN weights of a failed run). An interruption writes
        # the last save point's state instead; a failure writes nothing.
        if interrupted(exception):
            self.flush(trainer, barrier=False)


class BestCheckpoint(HeldCheckpoint):
    """best.ckpt: Lightning's ModelCheckpoint, the best epoch's checkpoint kept in memory and
    written with last.ckpt, at the end of fit and when interrupted."""

    def on_save_checkpoint(self, trainer, pl_module, checkpoint: dict) -> None:
        # Any other checkpoint being saved (Lightning's SLURM requeue checkpoint on SIGUSR1, a
        # trainer.save_checkpoint call) records best_model_path: write the file it names.
        if not HeldCheckpoint.dumping:
            self.flush(trainer, barrier=False)


class LastCheckpoint(HeldCheckpoint):
    """last.ckpt, what resume=auto continues: the state at the end of each epoch is held, and
    written once `every_s` seconds have passed since the last write (0: every epoch), at the
    end of fit and when the run is interrupted. Before it writes, the best checkpoint is
    written, so that the two files agree."""

    def __init__(self, every_s: float = 30.0, **kwargs):
        if not isinstance(every_s, (int, float)) or every_s < 0:
            raise ConfigError("callbacks.last_checkpoint.every_s", every_s, "seconds >= 0")
        super().__init__(**kwargs)
        self.every_s = float(every_s)
        self._written_at: float | None = None

    def on_train_start(self, trainer, pl_module) -> None:
        super().on_train_start(trainer, pl_module)
        self._written_at = time.monotonic()  # the interval counts training time from here
        if in_slurm_job():
            # There the time limit's signal belongs to the requeue machinery (submitit,
            # Lightning's SLURM environment), which ends the job without passing through
            # on_exception: the requeued job continues from last.ckpt, so it is written after
            # every epoch, as Lightning's own would be.
            self.every_s = 0.0

    def hold(self, trainer, filepath: str, checkpoint: dict) -> None:
        due = self._written_at is None or time.monotonic() - self._written_at >= self.every_s
        # rank 0 decides, as Lightning's own train_time_interval: ranks whose clocks disagree
        # would otherwise wait for each other in the write's barrier
        if not trainer.strategy.broadcast(due):
            return super().hold(trainer, filepath, checkpoint)
        self.held = (filepath, checkpoint)  # written at once: no copy needed
        self.flush(trainer)

    def flush(self, trainer, barrier: bool = True) -> None:
        if self.held is None:
            return
        for callback in trainer.checkpoint_callbacks:
            if isinstance(callback, BestCheckpoint):
                callback.flush(trainer, barrier)
        super().flush(trainer, barrier)
        self._written_at = time.monotonic()
