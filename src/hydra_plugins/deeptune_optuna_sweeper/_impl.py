"""The sweep: open (or join, or resume) the study, then ask / launch / tell until n_trials are done.

Each trial is one Hydra job in <sweep dir>/<trial number>, the sweep dir being the study's
folder (where its first sweep ran: `_home_folder`). The job gets the study's address
in `optuna.storage`, `optuna.study_name` and `optuna.trial`, so that it can report its
per-epoch metric and be pruned (deeptune.callbacks.pruning). Any number of sweep processes may
share one study (_shared), each trial sampled by its own sampler (_sampling).
"""

import logging
import math
import shlex
import signal
import time
import traceback
import warnings
from collections.abc import Sequence
from pathlib import Path

import optuna
from hydra.core.utils import JobReturn, JobStatus
from omegaconf import OmegaConf
from optuna.trial import Trial, TrialState
from sqlalchemy.engine import make_url

from deeptune import tasks
from deeptune.errors import Interrupted
from deeptune.run import resume
from deeptune.sweeps import study as contract
from deeptune.threads import launcher_jobs

from . import _results, _shared
from ._sampling import Sampling, sample
from ._space import SearchSpace, custom_space, format_value, parse
from .config import DIRECTIONS, SweepError

log = logging.getLogger(__name__)

MIN_TRIALS_FOR_RATE = 4  # a failure rate over fewer finished trials says little
MAX_TRACEBACK = 20_000  # characters of a failed job's traceback kept in the study
POLL = 2.0  # seconds between looks at the study while the last trials run elsewhere


def run_sweep(sweeper, arguments: list[str]) -> list[Sequence[JobReturn]]:
    s, config = sweeper.settings, sweeper.config
    sweep_dir = Path(config.hydra.sweep.dir).absolute()

    space = parse([f"{k}={_param_text(v)}" for k, v in _flatten(s.params).items()] + arguments)
    if not space.distributions:
        log.warning("no search space (choice / range / interval): every trial runs one config")
    storage = _storage_url(s.storage, sweep_dir)
    study_name = s.study_name or f"{config.hydra.job.name}-{time.strftime('%Y%m%d-%H%M%S')}"
    # Compose one point before touching the study, so that a mistyped key costs no trial.
    first = _trial_overrides(space, space.first_point(), storage, study_name, 0)
    sweeper.validate_batch_is_legal([first])

    objectives, directions = _objectives(s, config)
    n_trials, sampling = s.n_trials, Sampling(s, space)
    if sampling.name == "grid":
        n_trials = min(n_trials, math.prod(len(v) for v in space.grid().values()))
    if sampling.name == "cmaes" and len(directions) > 1:  # Optuna raises at the first trial
        raise SweepError(
            f"hydra.sweeper.sampler=cmaes is invalid: CMA-ES optimises one objective, and "
            f"optimized_metric has {len(directions)}: use tpe, nsgaii, nsgaiii, gp or random"
        )
    pruner_spec = _pruner_spec(s, directions)
    try:
        pruner = contract.make_pruner(pruner_spec)
    except ValueError as err:
        raise SweepError(str(err)) from None
    extend = custom_space(s.custom_search_space, config, space)
    if s.storage is None:  # the study's own database, in this folder
        sweep_dir.mkdir(parents=True, exist_ok=True)
    rdb = _shared.storage(storage, s.heartbeat_interval, s.grace_period)
    study = _open_study(rdb, storage, study_name, sampling.shared, pruner, directions)
    study.set_user_attr(contract.PRUNER_ATTR, pruner_spec)
    sweep_dir = _home_folder(config, study, sweep_dir)
    sweep_dir.mkdir(parents=True, exist_ok=True)
    OmegaConf.save(config, sweep_dir / "multirun.yaml")  # as Hydra's basic sweeper does

    batch_size = s.n_jobs or launcher_jobs(config.hydra.get("launcher"))
    results_path = sweep_dir / "optimization_results.yaml"
    returns, waiting, recover = [], False, _shared.Recovery(study, s.grace_period)
    with _shared.Heartbeat(study, s.heartbeat_interval) as heartbeat:
        while _results.finished(study) < n_trials:
            trials: list[Trial] = []
            try:
                recover()
                room = _shared.room(study, n_trials)
                if room <= 0:  # the last trials run in other sweeps: wait for them
                    waiting = waiting or _say_waiting(study, s.grace_period)
                    time.sleep(POLL)
                    continue
                for _ in range(min(batch_size, room)):
                    _ask(study, space, sampling, extend, n_trials, heartbeat, trials)
                if not trials:
                    continue
                batch = [
                    _trial_overrides(space, t.params, storage, study_name, t.number) for t in trials
                ]
                sweeper.validate_batch_is_legal(batch)
                results = _launch(sweeper.launcher, trials, batch)
            except BaseException as err:  # Ctrl+C, SIGTERM, a launcher that crashed
                stop = _stop(err)
                reason = str(stop) if stop else f"{type(err).__name__}: {err}"
                for trial in trials:
                    heartbeat.discard(trial)
                    _shared.abandon(study, trial, f"interrupted: {reason}")
                _results.write(study, results_path, n_trials, storage, space, objectives)
                if stop is None:
                    raise
                where = _how_to_resume(trials, storage, study_name)
                raise Interrupted(stop.signum, where) from None
            for trial, result in zip(trials, results, strict=True):
                _tell(study, trial, result, objectives)
                heartbeat.discard(trial)
            returns.append(results)
            _results.write(study, results_path, n_trials, storage, space, objectives)
            _check_failure_rate(study, n_trials, s.max_failure_rate, results_path)

    _results.write(study, results_path, n_trials, storage, space, objectives)
    _results.print_study(study, results_path, storage)
    return returns


def _ask(study, space, sampling: Sampling, extend, n_trials: int, heartbeat, trials: list):
    """Ask for one more trial into `trials`, unless it turns out to be surplus."""
    with warnings.catch_warnings():  # we record the heartbeats Optuna's warning is about
        warnings.filterwarnings("ignore", "Heartbeat of storage is supposed", UserWarning)
        trial = study.ask()  # a queued retry first, else a new trial
    trials.append(trial)  # from here on a stop abandons it
    if _shared.surplus(study, trial, n_trials):
        trials.pop()
        return
    heartbeat.add(trial)  # before sampling, which can take a while (GP, CMA-ES)
    sample(study, trial, space, sampling, extend)


def _say_waiting(study: optuna.Study, grace_period: int) -> bool:
    running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    log.info(
        "waiting for trial(s) %s, run by other sweeps on this study (a trial is retried once "
        "its sweep has sent no heartbeat for %d s)",
        ", ".join(str(t.number) for t in running),
        grace_period,
    )
    return True


def _stop(err: BaseException) -> Interrupted | None:
    """The signal that `err` stands for: an Interrupted (the entry point's SIGTERM handler, or a
    job stopped by one) or a KeyboardInterrupt (Ctrl+C); None for anything else."""
    if isinstance(err, Interrupted):
        return err
    return Interrupted(signal.SIGINT) if isinstance(err, KeyboardInterrupt) else None


def _how_to_resume(trials: list[Trial], storage: str, name: str) -> str:
    """What a stopped sweep left, and the one command that resumes it (the default storage is
    in this sweep's own folder, and the default study name has the time it started)."""
    numbers = ", ".join(str(t.number) for t in trials)
    left = f"trial(s) {numbers} marked interrupted" if trials else "none of its trials running"
    resume = f"hydra.sweeper.storage={shlex.quote(storage)} hydra.sweeper.study_name="
    return f"({left}); to resume, run the same command with {resume}{shlex.quote(name)}"


def _open_study(rdb, url: str, name: str, sampler, pruner, directions: list[str]):
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # we say what matters, once
    study = optuna.create_study(
        storage=rdb,
        study_name=name,
        sampler=sampler,
        pruner=pruner,
        directions=directions,
        load_if_exists=True,  # the same command resumes the study, or joins it
    )
    if (found := _results.directions(study)) != directions:
        raise SweepError(
            f"study {name!r} in {url} was created to {', '.join(found)}, "
            f"not {', '.join(directions)}: set hydra.sweeper.direction (and optimized_metric) "
            "or use another study_name"
        )
    done = _results.finished(study)
    log.info(
        "Optuna study %r in %s (%s), sampler %s",
        name,
        url,
        f"resumed: {done} finished trials" if done else "new",
        type(sampler).__name__,
    )
    return study


def _home_folder(config, study: optuna.Study, here: Path) -> Path:
    """Where this sweep runs its trials: the folder of the study's first sweep. A resumed study
    (or another sweep joining it) continues there, so that its folder holds every trial and
    `deeptune-report` on it sees them all, as after a sweep that was never stopped. Where that
    folder is not on this machine (a database shared by several), the sweep keeps its own."""
    home = study.user_attrs.get(contract.FOLDER_ATTR)
    if home is None:
        study.set_user_attr(contract.FOLDER_ATTR, str(here))
        return here
    home = Path(home)
    if home == here:
        return here
    if not home.is_dir():
        log.warning(
            "study %r began in %s, which is not on this machine: its trials from here go into %s",
            study.study_name,
            home,
            here,
        )
        return here
    log.info("study %r continues in its folder %s", study.study_name, home)
    resume.sweep_in(config, home)
    return home


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


def _tell(study: optuna.Study, trial: Trial, result: JobReturn, objectives) -> None:
    """Tell the study what the job did; `objectives`: the name(s) of what it returns."""
    names = [objectives] if isinstance(objectives, str) else objectives
    params = " ".join(f"{k}={format_value(v)}" for k, v in trial.params.items())
    n = len(study.directions)
    if result.status == JobStatus.COMPLETED:
        values = _finite_numbers(result.return_value, n)
        if values is not None:
            if _finish(study, trial, {}, values):
                shown = " ".join(map(_shown, names, values))
                log.info("trial %d: %s  %s", trial.number, shown, params)
            return
        wanted = "a finite number" if n == 1 else f"{n} finite numbers"
        error, trace = f"the job returned {result.return_value!r}, not {wanted}", None
    else:
        exc = result._return_value  # `.return_value` would re-raise it
        if isinstance(exc, optuna.TrialPruned):
            if _finish(study, trial, {}, state=TrialState.PRUNED):
                log.info("trial %d: %s  %s", trial.number, exc, params)
            return
        error = f"{type(exc).__name__}: {exc}"
        trace = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    attrs = {"error": error, **({"traceback": trace[-MAX_TRACEBACK:]} if trace else {})}
    if _finish(study, trial, attrs, state=TrialState.FAIL):
        log.warning("trial %d failed: %s  %s", trial.number, error.splitlines()[0], params)


def _finish(study, trial: Trial, attrs: dict, *values, **state) -> bool:
    if _shared.finish(study, trial, attrs, *values, **state):
        return True
    log.warning(
        "trial %d was taken for stale and queued again by another sweep (no heartbeat for "
        "hydra.sweeper.grace_period seconds): its result is dropped",
        trial.number,
    )
    return False


def _shown(objective: str, value: float) -> str:
    """val/acc=0.9133, n_params=198658."""
    spec = ".6g" if objective in tasks.RUN_FIGURES else ".4f"
    return f"{objective}={value:{spec}}"


def _finite_numbers(value, n: int) -> list[float] | None:
    """The values of `n` objectives from what a job returned: a number, or n of them."""
    values = list(value) if isinstance(value, (list, tuple)) else [value]
    numbers = [_finite_number(v) for v in values]
    return numbers if len(numbers) == n and None not in numbers else None


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


def _objectives(s, config) -> tuple[list[str], list[str]]:
    """What the trials return (optimized_metric: one metric, or a list of objectives) and which
    way each is better: hydra.sweeper.direction, one per objective, or by default
    optimized_mode for the first and each other objective's own direction."""
    from deeptune.config import check_objectives

    metric = config.get("optimized_metric")
    metric = OmegaConf.to_object(metric) if OmegaConf.is_config(metric) else metric
    configured = {k: v for k, v in (config.get("metrics") or {}).items() if v is not None}
    objectives = check_objectives(metric, list(configured)) if metric else ["value"]
    mode = DIRECTIONS.get(str(config.get("optimized_mode")))
    modes = _configured_modes(configured, objectives[1:])
    natural = [mode or "minimize"]
    natural += [DIRECTIONS[tasks.objective_mode(k, modes)] for k in objectives[1:]]
    if s.direction is None:
        return objectives, natural
    wanted = s.direction if isinstance(s.direction, list) else [s.direction]
    directions = [DIRECTIONS[d] for d in wanted]
    if len(directions) != len(objectives):
        shown = "[" + ", ".join(objectives) + "]" if len(objectives) > 1 else objectives[0]
        raise SweepError(
            f"hydra.sweeper.direction={s.direction!r} is invalid: {len(directions)} directions "
            f"for {len(objectives)} objective(s), optimized_metric={shown}: give one per "
            "objective, e.g. optimized_metric=[val/acc,n_params] "
            "hydra.sweeper.direction=[maximize,minimize]"
        )
    if mode and mode != directions[0]:
        log.warning("hydra.sweeper.direction=%s, but optimized_mode=%s", directions[0], mode)
    return objectives, directions


def _configured_modes(configured, objectives) -> dict[str, str]:
    """Which way the `metrics` group's objectives are better, from their torchmetrics classes
    (imported only when an objective after the first names one)."""
    named = [k.partition("/")[2] for k in objectives if k.partition("/")[2] in configured]
    if not named:
        return {}
    from deeptune.metrics import class_mode

    modes = {name: class_mode(configured[name]) for name in named}
    if unknown := [name for name, mode in modes.items() if mode is None]:
        raise SweepError(
            f"metrics.{unknown[0]} does not say which way is better (its higher_is_better is "
            "None): set hydra.sweeper.direction, one per objective"
        )
    return modes


def _pruner_spec(s, directions: list[str]) -> dict:
    """What the trials rebuild their pruner from (deeptune.sweeps.study.make_pruner)."""
    if isinstance(s.pruner, dict):
        node = {k: v for k, v in s.pruner.items() if not k.startswith("_")}
        spec = {"target": s.pruner["_target_"], "node": node, "args": s.pruner_args}
        prunes = not s.pruner["_target_"].endswith(".NopPruner")
    else:
        spec, prunes = {"name": s.pruner, "args": s.pruner_args}, s.pruner != "none"
    if prunes and len(directions) > 1:
        shown = s.pruner if isinstance(s.pruner, str) else s.pruner["_target_"]
        raise SweepError(
            f"hydra.sweeper.pruner={shown} is invalid: Optuna cannot prune a multi-objective "
            f"study ({len(directions)} directions): use hydra.sweeper.pruner=none"
        )
    return spec


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
