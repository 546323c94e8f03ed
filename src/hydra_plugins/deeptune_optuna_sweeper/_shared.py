"""Several sweep processes on one study: heartbeats, retries of what a stopped sweep left behind,
and exactly n_trials in all.

Any number of sweeps may run the same command, with the same hydra.sweeper.storage and
study_name: in several terminals (SQLite), or on several machines (a database server).
- Heartbeats are Optuna's own (RDBStorage's heartbeat_interval and grace_period): each sweep
  records one for every trial it runs, from a daemon thread, since Optuna records them only
  inside Study.optimize. A trial whose last heartbeat is older than grace_period belongs to a
  sweep that is gone: `optuna.storages.fail_stale_trials` fails it and `_retry_stale` queues it
  again; a trial with a live heartbeat is never touched. A trial that has none at all
  (its sweep died in the moment after asking, or a study from before heartbeats) is retried
  once it has been seen so for grace_period: that rule is ours, Optuna never fails such a trial.
- The count: a trial whose number comes after n_trials countable ones (finished and not
  interrupted, running, or queued) is surplus and finished at once, before it samples anything.
  Storages number trials in the order they are created, under a lock on the study, and a
  trial's countable predecessors can only drop out (an interrupted one's retry comes later),
  so at most n_trials are ever counted; a sweep with nothing left to ask waits for the others'
  trials, and retries them if they go stale.
"""

import logging
import os
import socket
import threading
import time
import warnings

import optuna
from optuna.exceptions import ExperimentalWarning, UpdateFinishedTrialError
from optuna.trial import FrozenTrial, Trial, TrialState

from deeptune.sweeps import study as contract

from . import _results

log = logging.getLogger(__name__)

OWNER = "owner"  # user attr: the host:pid that runs the trial and records its heartbeats
NOT_COUNTED = ("interrupted", "surplus")


def storage(url: str, heartbeat_interval: int, grace_period: int):
    return contract.rdb_storage(
        url,
        heartbeat_interval=heartbeat_interval,
        grace_period=grace_period,
        heartbeat_stale_trial_callback=_retry_stale,
    )


class Heartbeat:
    """Records the heartbeat of each trial this sweep runs, every `interval` seconds."""

    def __init__(self, study: optuna.Study, interval: float):
        self.study, self.interval = study, interval
        self._trials: dict[int, Trial] = {}
        self._lock, self._stop = threading.Lock(), threading.Event()
        self._thread = threading.Thread(target=self._run, name="optuna-heartbeat", daemon=True)

    def __enter__(self) -> "Heartbeat":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()

    def add(self, trial: Trial) -> None:
        contract.record_heartbeat(self.study, trial)  # the first one before the owner shows
        trial.set_user_attr(OWNER, f"{socket.gethostname()}:{os.getpid()}")
        with self._lock:
            self._trials[trial.number] = trial

    def discard(self, trial: Trial) -> None:
        with self._lock:
            self._trials.pop(trial.number, None)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            with self._lock:
                trials = list(self._trials.values())
            for trial in trials:
                try:
                    contract.record_heartbeat(self.study, trial)
                except Exception as err:  # a busy database: the next beat is in time
                    log.debug("heartbeat of trial %d: %s", trial.number, err)


class Recovery:
    """Fails and queues again the running trials whose sweep is gone, each time it is called."""

    def __init__(self, study: optuna.Study, grace_period: int):
        self.study, self.grace_period = study, grace_period
        self._ownerless: dict[int, float] = {}  # trial number -> when this sweep first saw it

    def __call__(self) -> None:
        with warnings.catch_warnings():  # fail_stale_trials is "experimental" since 2.9
            warnings.simplefilter("ignore", ExperimentalWarning)
            optuna.storages.fail_stale_trials(self.study)  # calls _retry_stale for each
        # Timed by this process's clock: another machine's clock (trial.datetime_start) may be
        # set to another time or zone.
        now = time.monotonic()
        running = self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
        ownerless = {t.number: t for t in running if OWNER not in t.user_attrs}
        self._ownerless = {n: self._ownerless.get(n, now) for n in ownerless}
        for number, since in self._ownerless.items():
            if now - since > self.grace_period:
                trial = contract.live_trial(self.study, ownerless[number])
                abandon(self.study, trial, "interrupted: its sweep stopped")
                log.warning("trial %d was left running by a stopped sweep: queued again", number)


def _retry_stale(study: optuna.Study, frozen: FrozenTrial) -> None:
    _queue_retry(study, frozen)
    log.warning(
        "trial %d: no heartbeat from its sweep (%s) for too long: queued again",
        frozen.number,
        frozen.user_attrs.get(OWNER, "?"),
    )


def abandon(study: optuna.Study, trial: Trial, reason: str) -> None:
    """FAIL with interrupted=True (not counted towards n_trials); it runs again later."""
    if finish(study, trial, {"interrupted": True, "error": reason}, state=TrialState.FAIL):
        _queue_retry(study, contract.frozen_trial(study, trial))


def _queue_retry(study: optuna.Study, trial: FrozenTrial) -> None:
    """A WAITING copy of `trial`, which `retry_of` links to it.

    As in Optuna's RetryHeartbeatStaleTrialCallback, the params and system attrs are kept (a
    queued trial's values, GridSampler's grid point: a trial stopped before it sampled is
    sampled afresh, on the same point); unlike it, the user attrs (the owner) are not.
    """
    retry = optuna.trial.create_trial(
        state=TrialState.WAITING,
        params=trial.params,
        distributions=trial.distributions,
        user_attrs={"retry_of": trial.number},
        system_attrs=trial.system_attrs,
    )
    study.add_trial(retry)


def finish(study: optuna.Study, trial: Trial, attrs: dict, *values, **state) -> bool:
    """Set `attrs` and tell; False when another sweep finished the trial first (it took the trial
    for stale), and the trial's result is dropped: its retry counts instead."""
    try:
        for key, value in attrs.items():
            trial.set_user_attr(key, value)
        study.tell(trial, *values, **state)
    except UpdateFinishedTrialError:
        return False
    except ValueError:  # "Cannot tell a FAIL trial"
        if contract.is_finished(study, trial):
            return False
        raise
    return True


def room(study: optuna.Study, n_trials: int) -> int:
    """How many trials to ask for: queued ones are popped first by ask(), so they do not count
    here, or a queue of retries would wait for itself."""
    c = _results.counts(study)
    return n_trials - sum(c[state] for state in _results.COUNTED) - c["running"]


def surplus(study: optuna.Study, trial: Trial, n_trials: int) -> bool:
    """Whether n_trials countable trials come before `trial`: then it is finished unrun."""
    kinds = _results.kinds(study.get_trials(deepcopy=False))
    before = sum(1 for n, kind in kinds.items() if n < trial.number and kind not in NOT_COUNTED)
    if before < n_trials:
        return False
    reason = f"surplus: {n_trials} trials were already done or under way"
    finish(study, trial, {"surplus": True, "error": reason}, state=TrialState.FAIL)
    return True
