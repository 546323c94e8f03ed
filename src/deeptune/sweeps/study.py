"""The contract between deeptune's Optuna sweeper and the trials it launches, in one place.

The sweeper (hydra_plugins.deeptune_optuna_sweeper) runs each trial as a Hydra job with the
`optuna.*` keys of configs/train.yaml set (`trial_overrides`); the job's pruning callback
(deeptune.callbacks.pruning) opens the same trial (`open_trial`) and rebuilds the pruner the
sweeper left in the study's user attributes (`PRUNER_ATTR`, `make_pruner`). The dependency runs
one way: the plugin imports this module, never the reverse.

Optuna's storage API has no public "trial by number", "state of this trial" or "heartbeat of
this trial" for a study loaded in another process: the private calls this needs are wrapped
here, and nowhere else. Optuna is imported only inside the functions (Hydra's plugin scan
imports the plugin's config at every start).
"""

import inspect
import logging
import random
import time
import warnings

log = logging.getLogger(__name__)

SQLITE_TIMEOUT = 60  # seconds a write waits for another process's lock (sqlite's default: 5)
OPEN_TRIES = 5

PRUNER_ATTR = "deeptune_pruner"  # storage keeps a study's trials, not its pruner
TRIAL_KEYS = ("optuna.storage", "optuna.study_name", "optuna.trial")
PRUNERS = {
    "none": "optuna.pruners.NopPruner",
    "median": "optuna.pruners.MedianPruner",
    "percentile": "optuna.pruners.PercentilePruner",
    "hyperband": "optuna.pruners.HyperbandPruner",
    "successive_halving": "optuna.pruners.SuccessiveHalvingPruner",
}


def make_pruner(spec: dict | None):
    """The Optuna pruner for {"name": ..., "args": {...}} (None: no pruning). Raises ValueError
    naming the bad setting."""
    from hydra.utils import get_class

    spec = spec or {"name": "none", "args": {}}
    name, args = spec["name"], dict(spec.get("args") or {})
    if name not in PRUNERS:
        raise ValueError(f"hydra.sweeper.pruner={name!r} is invalid: one of {', '.join(PRUNERS)}")
    cls = get_class(PRUNERS[name])
    # Presets carry arguments for the pruners that take them (n_startup_trials, ...); a pruner
    # drops those meant for another one, but a name no pruner knows is a typo.
    known = inspect.signature(cls).parameters
    anywhere = {
        p for path in PRUNERS.values() for p in inspect.signature(get_class(path)).parameters
    }
    if typos := sorted(set(args) - anywhere):
        raise ValueError(
            f"hydra.sweeper.pruner_args={args} for pruner={name}: no pruner takes {typos}"
        )
    if dropped := sorted(set(args) - set(known)) if name != "none" else []:
        log.warning("pruner=%s ignores pruner_args %s", name, dropped)
    args = {k: v for k, v in args.items() if k in known}
    try:
        return cls(**args)
    except (TypeError, ValueError) as err:
        raise ValueError(f"hydra.sweeper.pruner_args={args} for pruner={name}: {err}") from None


def trial_overrides(storage: str, study_name: str, number: int) -> list[str]:
    """The overrides that point a job at its trial (values quoted: URLs hold ':' and '/')."""
    from hydra.core.override_parser.types import Quote, QuotedString

    def quote(text: str) -> str:
        return QuotedString(text=text, quote=Quote.single).with_quotes()

    values = (quote(storage), quote(study_name), str(number))
    return [f"{key}={value}" for key, value in zip(TRIAL_KEYS, values, strict=True)]


def open_trial(storage: str, study_name: str, number: int):
    """The running trial `number` of the study, with the sweep's pruner; KeyError if the study
    has no such trial."""
    import optuna

    study = optuna.load_study(study_name=study_name, storage=rdb_storage(storage))
    trial_id = study._storage.get_trial_id_from_study_id_trial_number(study._study_id, number)
    study.pruner = make_pruner(study.user_attrs.get(PRUNER_ATTR))
    return optuna.Trial(study, trial_id)


def live_trial(study, frozen):
    """An `optuna.Trial` to report to or tell, for a FrozenTrial of `study`."""
    import optuna

    return optuna.Trial(study, frozen._trial_id)


def frozen_trial(study, trial):
    """What the storage holds now for `trial` (an optuna.Trial), a FrozenTrial."""
    return study._storage.get_trial(trial._trial_id)


def is_finished(study, trial) -> bool:
    """Whether the storage already holds a final state for `trial` (an optuna.Trial)."""
    return frozen_trial(study, trial).state.is_finished()


def rdb_storage(url: str, **heartbeat):
    """Optuna's RDBStorage for `url` (`heartbeat`: its heartbeat_interval, grace_period and
    heartbeat_stale_trial_callback), safe to open from several processes at once."""
    import optuna
    from sqlalchemy.exc import SQLAlchemyError

    # Several sweeps and their jobs write to one SQLite file: a write waits for the others'
    # locks instead of failing after 5 s. Elsewhere a connection left idle through a long trial
    # may have been closed by the server: checked before use (Optuna does this for MySQL only).
    sqlite = url.startswith("sqlite")
    engine = {"connect_args": {"timeout": SQLITE_TIMEOUT}} if sqlite else {"pool_pre_ping": True}
    for attempt in range(OPEN_TRIES):
        try:
            with warnings.catch_warnings():  # heartbeat_interval is "experimental" since 2.9
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                return optuna.storages.RDBStorage(url, engine_kwargs=engine, **heartbeat)
        except (SQLAlchemyError, optuna.exceptions.StorageInternalError):
            # Processes that open a new database together race to create its tables and version
            # row (`table trial_intermediate_values already exists`, a duplicate key): Optuna
            # does not retry that; the next attempt finds them made.
            if attempt == OPEN_TRIES - 1:
                raise
            time.sleep(0.2 + random.random())
    raise AssertionError("unreachable")


def record_heartbeat(study, trial) -> None:
    """Tell the study that `trial` (an optuna.Trial) is still being run: Optuna does this itself
    only inside Study.optimize, which an ask / tell loop does not use."""
    study._storage.record_heartbeat(trial._trial_id)
