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
FOLDER_ATTR = "deeptune_sweep_dir"  # the study's folder: every sweep of it runs its trials there
TRIAL_KEYS = ("optuna.storage", "optuna.study_name", "optuna.trial")
PRUNERS = {
    "none": "optuna.pruners.NopPruner",
    "median": "optuna.pruners.MedianPruner",
    "percentile": "optuna.pruners.PercentilePruner",
    "hyperband": "optuna.pruners.HyperbandPruner",
    "successive_halving": "optuna.pruners.SuccessiveHalvingPruner",
}


def make_pruner(spec: dict | None):
    """The Optuna pruner for {"name": ..., "args": {...}} (hydra.sweeper.pruner as a name of
    PRUNERS, args its pruner_args) or {"target": "optuna.pruners.<Class>", "node": {...},
    "args": {...}} (hydra.sweeper.pruner as a node with arguments of its own; pruner_args fill
    in what it leaves out); None: no pruning. Raises ValueError naming the bad setting."""
    from hydra.utils import get_class

    spec = spec or {"name": "none", "args": {}}
    args = dict(spec.get("args") or {})
    if "target" in spec:
        cls = optuna_class(spec["target"], "optuna.pruners", "hydra.sweeper.pruner")
        label = cls.__name__
    elif spec["name"] in PRUNERS:
        cls, label = get_class(PRUNERS[spec["name"]]), spec["name"]
    else:
        allowed = ", ".join(PRUNERS)
        raise ValueError(f"hydra.sweeper.pruner={spec['name']!r} is invalid: one of {allowed}")
    # Presets carry arguments for the pruners that take them (n_startup_trials, ...); a pruner
    # drops those meant for another one, but a name no pruner knows is a typo.
    known = inspect.signature(cls).parameters
    anywhere = {
        p for path in PRUNERS.values() for p in inspect.signature(get_class(path)).parameters
    }
    if typos := sorted(set(args) - anywhere - set(known)):
        raise ValueError(
            f"hydra.sweeper.pruner_args={args} for pruner={label}: no pruner takes {typos}"
        )
    if dropped := sorted(set(args) - set(known)) if label != "none" else []:
        log.warning("pruner=%s ignores pruner_args %s", label, dropped)
    args = {k: v for k, v in args.items() if k in known}
    if "target" in spec:
        return build(cls, {**args, **(spec.get("node") or {})}, "hydra.sweeper.pruner")
    try:
        return cls(**args)
    except (TypeError, ValueError) as err:
        raise ValueError(f"hydra.sweeper.pruner_args={args} for pruner={label}: {err}") from None


def optuna_class(target, package: str, key: str):
    """The class `target` names, one of Optuna's in `package` (optuna.samplers or
    optuna.pruners): a sweep's config builds Optuna's objects, nothing else."""
    from hydra.utils import get_class

    example = {"optuna.samplers": "TPESampler", "optuna.pruners": "MedianPruner"}[package]
    if not isinstance(target, str) or not target.startswith(package + "."):
        allowed = f"a class of {package}, e.g. {package}.{example}"
        raise ValueError(f"{key}._target_={target!r} is invalid: {allowed}")
    try:
        return get_class(target)
    except Exception:  # Hydra's ImportError or ValueError, several lines long
        import optuna

        raise ValueError(
            f"{key}._target_={target!r} is invalid: optuna {optuna.__version__} has no such class"
        ) from None


def build(cls, args: dict, key: str, *positional, **extra):
    """`cls(*positional, **args, **extra)`, its arguments checked against its signature first;
    an argument that is a node with an Optuna `_target_` of its own is built (PatientPruner's
    `wrapped_pruner`, NSGAIISampler's `crossover`). Raises ValueError naming the bad key."""
    from hydra.errors import InstantiationException
    from hydra.utils import instantiate

    params = inspect.signature(cls).parameters
    if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        for name, value in args.items():
            if name not in params:
                takes = ", ".join(params) or "no arguments"
                raise ValueError(f"{key}.{name}={value!r} is invalid: {cls.__name__} takes {takes}")
    built = {}
    for name, value in args.items():
        if isinstance(value, dict) and "_target_" in value:
            target = value["_target_"]
            if not (isinstance(target, str) and target.startswith("optuna.")):
                raise ValueError(f"{key}.{name}._target_={target!r} is invalid: an Optuna class")
            try:
                value = instantiate(value)
            except InstantiationException as err:
                cause = err.__cause__ or err
                raise ValueError(f"{key}.{name}={value}: {_first_line(cause)}") from None
        built[name] = value
    try:
        return cls(*positional, **built, **extra)
    except (TypeError, ValueError) as err:  # Optuna's own checks of the values
        raise ValueError(f"{key}={args}: {_first_line(err)}") from None


def _first_line(err: BaseException) -> str:
    lines = [line for line in str(err).splitlines() if line.strip()]
    return f"{type(err).__name__}: {lines[0] if lines else ''}"


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
