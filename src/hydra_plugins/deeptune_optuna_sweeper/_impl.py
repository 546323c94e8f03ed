"""The sweep: open (or resume) the study, then ask / launch / tell until n_trials are done.

Each trial is one Hydra job in <sweep dir>/<trial number>. The job gets the study's address
in `optuna.storage`, `optuna.study_name` and `optuna.trial`, so that it can report its
per-epoch metric and be pruned (deeptune.callbacks.pruning). One sweeper process per study:
trials still RUNNING when a sweep starts are taken to be left over from a killed sweep.
"""

import logging
import math
import signal
import threading
import time
import traceback
from collections.abc import Sequence
from contextlib import contextmanager
from pathlib import Path

import optuna
from hydra.core.utils import JobReturn, JobStatus
from hydra.utils import get_class
from omegaconf import OmegaConf
from optuna.trial import Trial, TrialState
from sqlalchemy.engine import make_url

from deeptune.sweeps import study as contract
from deeptune.threads import launcher_jobs

from . import _results
from ._space import SearchSpace, format_value, parse
from .config import DIRECTIONS, SAMPLERS, SweepError

log = logging.getLogger(__name__)

MIN_TRIALS_FOR_RATE = 4  # a failure rate over fewer finished trials says little
MAX_TRACEBACK = 20_000  # characters of a failed job's traceback kept in the study


def run_sweep(sweeper, arguments: list[str]) -> list[Sequence[JobReturn]]:
    s, config = sweeper.settings, sweeper.config
    sweep_dir = Path(config.hydra.sweep.dir).absolute()
    sweep_dir.mkdir(parents=True, exist_ok=True)
    OmegaConf.save(config, sweep_dir / "multirun.yaml")  # as Hydra's basic sweeper does

    space = parse([f"{k}={_param_text(v)}" for k, v in _flatten(s.params).items()] + arguments)
    if not space.distributions:
        log.warning("no search space (choice / range / interval): every trial runs one config")
    storage = _storage_url(s.storage, sweep_dir)
    study_name = s.study_name or f"{config.hydra.job.name}-{time.strftime('%Y%m%d-%H%M%S')}"
    # Compose one point before touching the study, so that a mistyped key costs no trial.
    first = _trial_overrides(space, space.first_point(), storage, study_name, 0)
    sweeper.validate_batch_is_legal([first])

    n_trials, sampler = s.n_trials, _sampler(s, space)
    if s.sampler == "grid":
        n_trials = min(n_trials, math.prod(len(v) for v in space.grid().values()))
    pruner_spec = {"name": s.pruner, "args": s.pruner_args}
    try:
        pruner = contract.make_pruner(pruner_spec)
    except ValueError as err:
        raise SweepError(str(err)) from None
    study = _open_study(storage, study_name, sampler, pruner, _direction(s, config))
    study.set_user_attr(contract.PRUNER_ATTR, pruner_spec)
    _recover_interrupted(study)

    metric = config.get("optimized_metric") or "value"
    batch_size = s.n_jobs or launcher_jobs(config.hydra.get("launcher"))
    results_path = sweep_dir / "optimization_results.yaml"
    returns = []
    with _sigterm_as_keyboard_interrupt():
        while (done := _results.finished(study)) < n_trials:
            trials = [
                study.ask(space.distributions) for _ in range(min(batch_size, n_trials - done))
            ]
            batch = [
                _trial_overrides(space, t.params, storage, study_name, t.number) for t in trials
            ]
            try:
                sweeper.validate_batch_is_legal(batch)
                results = _launch(sweeper.launcher, trials, batch)
            except BaseException as err:  # Ctrl+C, SIGTERM, a launcher that crashed
                for trial in trials:
                    _abandon(study, trial, f"interrupted: {type(err).__name__}: {err}")
                _results.write(study, results_path, n_trials, storage, space)
                log.warning(
                    "sweep stopped: trial(s) %s marked interrupted; run the same command with "
                    "hydra.sweeper.storage=%s hydra.sweeper.study_name=%s to resume",
                    ", ".join(str(t.number) for t in trials),
                    storage,
                    study_name,
                )
                raise
            for trial, result in zip(trials, results, strict=True):
                _tell(study, trial, result, metric)
            returns.append(results)
            _results.write(study, results_path, n_trials, storage, space)
            _check_failure_rate(study, n_trials, s.max_failure_rate, results_path)

    _results.write(study, results_path, n_trials, storage, space)
    _results.print_table(study, metric, results_path)
    return returns


def _open_study(storage: str, name: str, sampler, pruner, direction: str) -> optuna.Study:
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # we say what matters, once
    study = optuna.create_study(
        storage=storage,
        study_name=name,
        sampler=sampler,
        pruner=pruner,
        direction=direction,
        load_if_exists=True,  # the same command resumes the study
    )
    if study.direction.name.lower() != direction:
        raise SweepError(
            f"study {name!r} in {storage} was created to {study.direction.name.lower()}, "
            f"not {direction}: set hydra.sweeper.direction or use another study_name"
        )
    done = _results.finished(study)
    log.info(
        "Optuna study %r in %s (%s), sampler %s",
        name,
        storage,
        f"resumed: {done} finished trials" if done else "new",
        type(sampler).__name__,
    )
    return study


def _recover_interrupted(study: optuna.Study) -> None:
    """Trials a killed sweep left RUNNING: mark them and queue their params to run again."""
    for frozen in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        _abandon(study, contract.live_trial(study, frozen), "interrupted: the sweep stopped")
        log.warning("trial %d was left running by a stopped sweep: queued again", frozen.number)


def _abandon(study: optuna.Study, trial: Trial, reason: str) -> None:
    """FAIL with interrupted=True (not counted towards n_trials); its params run again later."""
    if contract.is_finished(study, trial):
        return
    trial.set_user_attr("interrupted", True)
    trial.set_user_attr("error", reason)
    study.tell(trial, state=TrialState.FAIL)
    if trial.params:
        study.enqueue_trial(trial.params, user_attrs={"retry_of": trial.number})


def _launch(launcher, trials: list[Trial], batch: list[list[str]]) -> list[JobReturn]:
    """Launch so that job folders are named by trial number (numbers are almost always
    consecutive; a queued trial from a resumed sweep may not be)."""
    results: list[JobReturn] = []
    start = 0
    for end in range(1, len(trials) + 1):
        if end == len(trials) or trials[end].number != trials[end - 1].number + 1:
            results += launcher.launch(batch[start:end], initial_job_idx=trials[start].number)
            start = end
    return results


def _tell(study: optuna.Study, trial: Trial, result: JobReturn, metric: str) -> None:
    params = " ".join(f"{k}={format_value(v)}" for k, v in trial.params.items())
    if result.status == JobStatus.COMPLETED:
        value = _finite_number(result.return_value)
        if value is not None:
            study.tell(trial, value)
            log.info("trial %d: %s=%.4f  %s", trial.number, metric, value, params)
            return
        error, trace = f"the job returned {result.return_value!r}, not a finite number", None
    else:
        exc = result._return_value  # `.return_value` would re-raise it
        if isinstance(exc, optuna.TrialPruned):
            study.tell(trial, state=TrialState.PRUNED)
            log.info("trial %d: %s  %s", trial.number, exc, params)
            return
        error = f"{type(exc).__name__}: {exc}"
        trace = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    trial.set_user_attr("error", error)
    if trace:
        trial.set_user_attr("traceback", trace[-MAX_TRACEBACK:])
    study.tell(trial, state=TrialState.FAIL)
    log.warning("trial %d failed: %s  %s", trial.number, error.splitlines()[0], params)


def _finite_number(value) -> float | None:
    if value is None or isinstance(value, (str, bytes, bool)):
        return None
    try:
        number = float(value)  # a float, or a numpy / torch scalar
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _check_failure_rate(study, n_trials: int, max_rate: float, results_path: Path) -> None:
    counts = _results.counts(study)
    failed, finished = counts["fail"], _results.finished(study)
    if failed and (
        (finished >= MIN_TRIALS_FOR_RATE and failed / finished > max_rate)
        or failed > max_rate * n_trials
    ):
        raise SweepError(
            f"{failed} of {finished} finished trials failed: rate {failed / finished:.2f} > "
            f"hydra.sweeper.max_failure_rate={max_rate}; sweep stopped. "
            f"The errors are in {results_path}"
        )


def _trial_overrides(space: SearchSpace, params: dict, storage: str, name: str, number: int):
    return [*space.overrides(params), *contract.trial_overrides(storage, name, number)]


def _sampler(s, space: SearchSpace):
    grid = s.sampler == "grid"
    cls = _GridSampler if grid else get_class(SAMPLERS[s.sampler])
    try:
        return cls(*([space.grid()] if grid else []), **s.sampler_args, seed=s.seed)
    except TypeError as err:  # an argument that the sampler does not take
        raise SweepError(f"hydra.sweeper.sampler_args={s.sampler_args}: {err}") from None


class _GridSampler(optuna.samplers.GridSampler):
    def after_trial(self, study, trial, state, values) -> None:
        # GridSampler calls Study.stop() once the grid is done, which raises outside
        # Study.optimize(); the sweep counts its trials itself.
        pass


def _direction(s, config) -> str:
    mode = DIRECTIONS.get(str(config.get("optimized_mode")))
    direction = DIRECTIONS[s.direction] if s.direction else mode or "minimize"
    if mode and mode != direction:
        log.warning("hydra.sweeper.direction=%s, but optimized_mode=%s", direction, mode)
    return direction


def _storage_url(storage: str | None, sweep_dir: Path) -> str:
    """An SQLite file in the sweep folder by default; relative SQLite paths made absolute, so
    that jobs that run elsewhere (another launcher, hydra.job.chdir=true) find the study."""
    if storage is None:
        return f"sqlite:///{sweep_dir / 'optuna.db'}"
    url = make_url(storage)
    if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
        url = url.set(database=str(Path(url.database).expanduser().absolute()))
    return url.render_as_string(hide_password=False)


def _flatten(params: dict, prefix: str = "") -> dict:
    """{model: {depth: ...}} reads as {model.depth: ...}: both spellings name one override."""
    flat = {}
    for key, value in params.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _param_text(value) -> str:
    return format_value(value) if not isinstance(value, str) else value


@contextmanager
def _sigterm_as_keyboard_interrupt():
    """SIGTERM (a scheduler, `kill`) stops the sweep the way Ctrl+C does: the running trials are
    marked interrupted instead of being left RUNNING."""

    def handler(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers can only be set from the main thread
        return
    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
