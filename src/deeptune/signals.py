"""A run stopped by a signal is never a success: SIGTERM and Ctrl-C become `Interrupted`.

Outside Lightning's loops a SIGTERM raises Interrupted at once (the entry point's
`sigterm_raises`). Inside `trainer.fit` / `validate` / `test`, Lightning's own handler runs
first and only sets a flag: its loops stop at the end of the current step with
SIGTERMException (a SystemExit, which would otherwise end the process with status 0), so a
checkpoint is never cut off half-written. Ctrl-C inside Lightning is caught there and becomes
`sys.exit(1)`. `stopped` turns both back into Interrupted, which the run records (metrics.json
status interrupted) and the entry point reports in one line with exit status 128 + the
signal's number.

Inside a SLURM job the signals belong to the cluster's requeue machinery (submitit, or
Lightning's SLURM environment): there nothing is changed.
"""

import os
import signal
import threading
from contextlib import contextmanager

from deeptune.errors import Interrupted


def in_slurm_job() -> bool:
    return "SLURM_JOB_ID" in os.environ


@contextmanager
def sigterm_raises():
    """Within this block SIGTERM raises Interrupted in the main thread (Python's default would
    end the process without a word or a record)."""
    if in_slurm_job() or threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _on_sigterm(signum, frame) -> None:
    if signal.getsignal(signal.SIGTERM) is not _on_sigterm:
        # Lightning's handler is installed and calls this one after its own: its loops stop at
        # the end of the step, and `stopped` reports it.
        return
    raise Interrupted(signum)


def stopped(err: BaseException) -> Interrupted | None:
    """The Interrupted that `err` stands for: Lightning's SIGTERMException, its exit after a
    KeyboardInterrupt, a KeyboardInterrupt, or an Interrupted; None for anything else (and
    inside a SLURM job, where the cluster handles signals)."""
    if isinstance(err, Interrupted):
        return err
    if isinstance(err, KeyboardInterrupt):
        return Interrupted(signal.SIGINT)
    if in_slurm_job():
        return None
    if type(err).__name__ == "SIGTERMException":
        return Interrupted(signal.SIGTERM)
    if isinstance(err, SystemExit) and isinstance(err.__context__, KeyboardInterrupt):
        return Interrupted(signal.SIGINT)
    return None
