"""Entry-point plumbing shared by train and eval: process settings, one-line errors, the safety net.

Every way a run can end badly ends in one line on stderr and a non-zero exit status:
- a bad override that Hydra cannot compose (unknown key, unbalanced bracket, `group=null`):
  the key and what to do, exit 2;
- a value the schema refuses (ConfigError): the key, the value and what is allowed, exit 2;
- training that went wrong in a way the user can act on (TrainingError, e.g. a NaN loss): how
  to act, exit 1;
- anything else raised while building or fitting: the config node whose object raised it, the
  error, and the run's log file, which holds the full traceback, exit 1;
- a signal (SIGTERM, Ctrl-C): where it stopped and how to continue, exit 143 / 130
  (deeptune.signals).
HYDRA_FULL_ERROR=1 shows Python's own traceback instead, as in any Hydra app.
"""

import atexit
import difflib
import gc
import logging
import os
import sys
import traceback
from collections.abc import Callable
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from hydra.errors import HydraException
from hydra.types import RunMode
from omegaconf.errors import OmegaConfBaseException

from deeptune import signals
from deeptune.config import check_group_overrides, user_config_dirs
from deeptune.errors import ConfigError, Interrupted, NodeError, TrainingError, fail

log = logging.getLogger(__name__)
USER_FULL_ERROR = "DEEPTUNE_USER_HYDRA_FULL_ERROR"


def guarded(main: Callable[[], object]) -> Callable[[], object]:
    """The console script around a `hydra.main` function."""

    def entry():
        # Idle OpenMP threads spin before they sleep; with two jobs on two cores the spinning
        # steals the other job's core (runs were 3-30x slower). Set before torch loads; a
        # user's own value wins.
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
        freeze_at_exit()
        # Hydra raises instead of printing its traceback, and the lines below report it. The
        # user's own setting is kept for the processes a run starts (DDP ranks).
        ours = USER_FULL_ERROR not in os.environ
        users = os.environ.setdefault(USER_FULL_ERROR, os.environ.get("HYDRA_FULL_ERROR", ""))
        os.environ["HYDRA_FULL_ERROR"] = "1"
        overrides = _overrides(sys.argv[1:])
        try:
            with signals.sigterm_raises():
                check_group_overrides(overrides, user_config_dirs(sys.argv[1:]))
                return main()
        except (Interrupted, KeyboardInterrupt) as err:
            stop = signals.stopped(err)
            hint = "" if "command" in str(stop) else "; run the same command to continue"
            print(f"deeptune: {stop}{hint}", file=sys.stderr)
            sys.exit(stop.exit_status)
        except Exception as err:
            if users == "1":
                raise
            report(err, overrides)
        finally:
            if ours:
                os.environ.pop(USER_FULL_ERROR)
                os.environ.pop("HYDRA_FULL_ERROR")
                if users:
                    os.environ["HYDRA_FULL_ERROR"] = users

    return entry


# Hydra's flags that take a value: their value is not an override.
_VALUED_FLAGS = {
    "--config-dir",
    "-cd",
    "--config-path",
    "-cp",
    "--config-name",
    "-cn",
    "--experimental-rerun",
    "--info",
    "-i",
}


def _overrides(args: list[str]) -> list[str]:
    picked = []
    for i, arg in enumerate(args):
        if arg.startswith("-") or (i and args[i - 1] in _VALUED_FLAGS and "=" not in arg):
            continue
        picked.append(arg)
    return picked


_freezing = []


def freeze_at_exit() -> None:
    """At exit the interpreter garbage-collects the ~500k objects torch and lightning leave
    behind, about a second of nothing. Freezing them skips that; registered first, it runs
    last."""
    if not _freezing:
        atexit.register(gc.freeze)
        _freezing.append(True)


def report(err: Exception, overrides: list[str]) -> None:
    if isinstance(err, ConfigError):
        fail(str(err))
    if isinstance(err, (TrainingError, NodeError)):
        fail(str(err), status=1)
    if isinstance(err, (HydraException, OmegaConfBaseException)) or _from_hydra(err):
        fail(hydra_error(err, overrides))
    # A multirun job's own exception, re-raised by the sweep (its traceback is in its log).
    fail(str(NodeError.of(getattr(err, "config_node", None), err)), status=1)


def _from_hydra(err: Exception) -> bool:
    """Hydra's own ValueErrors ("Config group override must be a string ...")."""
    frames = traceback.extract_tb(err.__traceback__)
    return bool(frames) and f"{os.sep}hydra{os.sep}" in frames[-1].filename


def hydra_error(err: Exception, overrides: list[str]) -> str:
    """Hydra's multi-line composition errors, as one line that names the key."""
    text = str(err)
    cause = err.__cause__
    key = getattr(cause, "full_key", None) or _quoted_key(text)
    value = _override_value(key, overrides)
    if "Could not override" in text and cause is not None:
        parent = getattr(cause, "parent_node", None)
        leaf = str(getattr(cause, "key", "") or key.rpartition(".")[2])
        known = [str(k) for k in parent] if hasattr(parent, "keys") else []
        close = difflib.get_close_matches(leaf, known, n=1, cutoff=0.6)
        where = key.rpartition(".")[0]
        hint = f"did you mean {where + '.' if where else ''}{close[0]}?" if close else ""
        add = f"add a new key with +{key}={value}" if value is not None else ""
        return f"{key} is not a key of the config: " + "; ".join(p for p in (hint, add) if p)
    if "An item is already at" in text:
        return f"{key}={value} is invalid: {key} exists already: set it without '+'"
    if "Could not delete" in text:
        return f"~{key} is invalid: {key} does not exist"
    if type(err).__name__ == "OverrideParseException":
        bad = _unparsable(overrides) or "?"
        key, _, value = bad.partition("=")
        if "LexerNoViableAlt" in text:  # a character the grammar takes only inside quotes
            odd = value.count("'") % 2 or value.count('"') % 2
            reason = "an unclosed quote" if odd else "characters that need quotes"
        else:
            lines = [ln for ln in text.splitlines() if ln.strip() and "hydra.cc" not in ln]
            reason = lines[-1].strip() if lines else text
        mark = '"' if "'" in value else "'"
        quoted = f"; quote the value, e.g. {key}={mark}{value}{mark}" if value else ""
        return f"{bad} cannot be parsed: {reason}{quoted}"
    if "Config group override must be" in text:
        return f"{text.splitlines()[0]}: a group takes one of its choices, e.g. logger=none"
    return _first_line(err)


def _unparsable(overrides: list[str]) -> str | None:
    """The first override Hydra's grammar refuses (its message quotes the value only)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parser = OverridesParser.create()
    for override in overrides:
        try:
            parser.parse_overrides([override])
        except HydraException:
            return override
    return None


def _quoted_key(text: str) -> str:
    parts = text.split("'")
    return parts[1] if len(parts) > 2 else "?"


def _override_value(key: str, overrides: list[str]):
    for item in overrides:
        name, _, value = item.partition("=")
        if name.lstrip("+~") == key:
            return value
    return None


def _first_line(err: BaseException) -> str:
    lines = [ln for ln in str(err).splitlines() if ln.strip()]
    return lines[0][:300] if lines else type(err).__name__


def run_task(task: Callable, cfg) -> object:
    """Run `task(cfg)` inside the Hydra job; an unexpected exception gets its traceback written
    to the job's log file and becomes a NodeError that names it.

    In a single run the entry point (`guarded`) prints the one line; in a multirun the error
    goes to the sweeper, which records the failed job.
    """
    quiet_libraries()
    # A job a launcher runs in a process of its own (a SLURM allocation, a joblib worker) skips
    # that second at exit too: under SLURM it can meet the time-out signal of an allocation that
    # has just finished its work.
    freeze_at_exit()
    fresh = fresh_run_folder()
    try:
        return task(cfg)
    except Exception as err:
        expected = isinstance(err, (ConfigError, TrainingError))
        log_file = None if expected else write_traceback(err)
        if in_multirun() or (not expected and os.environ.get(USER_FULL_ERROR) == "1"):
            raise  # as it is: the sweeper tells a pruned trial from a failed one by its type
        if isinstance(err, ConfigError) and fresh is not None:
            remove_unused(fresh)  # the run never started: no empty folder left behind
        if not expected:
            err = NodeError.of(getattr(err, "config_node", None), err, log_file)
        report(err, [])


def fresh_run_folder() -> Path | None:
    """The single run's folder when it holds only what Hydra put there as the job started
    (.hydra/ and an empty log file): a folder this run may remove if it never starts."""
    if not HydraConfig.initialized() or in_multirun():
        return None
    out = Path(HydraConfig.get().runtime.output_dir)
    if Path.cwd().resolve().is_relative_to(out.resolve()):  # hydra.run.dir=. : never the cwd
        return None
    return out if _only_hydra_files(out, empty_logs=True) else None


def _only_hydra_files(out: Path, empty_logs: bool = False) -> bool:
    subdir = HydraConfig.get().output_subdir  # .hydra, or None (hydra.output_subdir=null)
    logs = {Path(h.baseFilename) for h in _file_handlers()}
    for path in out.rglob("*"):
        in_subdir = subdir is not None and path.relative_to(out).parts[0] == subdir
        is_log = path in logs and not (empty_logs and path.stat().st_size)
        if not (in_subdir or is_log):
            return False
    return True


def remove_unused(out: Path) -> None:
    """Remove a run folder that still holds Hydra's files only, and the parents that this
    leaves empty (outputs/<date>/), up to the working directory; never a folder with content."""
    import shutil

    if not out.is_dir() or not _only_hydra_files(out):
        return
    for handler in _file_handlers():  # the job's log file: closed, so nothing writes it again
        if Path(handler.baseFilename).is_relative_to(out):
            handler.close()
            for logger in [logging.getLogger(), *logging.Logger.manager.loggerDict.values()]:
                if isinstance(logger, logging.Logger):
                    logger.removeHandler(handler)
    shutil.rmtree(out, ignore_errors=True)
    cwd = Path.cwd().resolve()
    parent = out.resolve().parent
    while parent != cwd and parent.is_relative_to(cwd) and not any(parent.iterdir()):
        try:
            parent.rmdir()
        except OSError:  # another run started in it meanwhile: it is theirs now
            break
        parent = parent.parent


def _file_handlers() -> list[logging.FileHandler]:
    loggers = [logging.getLogger(), *logging.Logger.manager.loggerDict.values()]
    found = {
        h
        for lg in loggers
        if isinstance(lg, logging.Logger)
        for h in lg.handlers
        if isinstance(h, logging.FileHandler)
    }
    return list(found)


def write_traceback(err: BaseException) -> Path | None:
    """The full traceback into the job's log file (train.log), not onto the console."""
    handlers = [h for h in logging.getLogger().handlers if isinstance(h, logging.FileHandler)]
    exc_info = (type(err), err, err.__traceback__)
    record = log.makeRecord(log.name, logging.ERROR, __file__, 0, "the run stopped", (), exc_info)
    for handler in handlers:
        handler.handle(record)
    if handlers:
        return Path(handlers[0].baseFilename)
    if HydraConfig.initialized():
        path = Path(HydraConfig.get().runtime.output_dir) / "error.log"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(traceback.format_exception(err)))
        return path
    return None


def in_multirun() -> bool:
    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def quiet_libraries() -> None:
    import warnings

    # Lightning announces devices and tips at INFO on every run; the summary says what matters.
    logging.getLogger("lightning.pytorch.utilities.rank_zero").setLevel(logging.WARNING)
    logging.getLogger("lightning.fabric.utilities.rank_zero").setLevel(logging.WARNING)
    # "Received SIGTERM": the run's own line says where it stopped and how to continue.
    logging.getLogger("lightning.pytorch.trainer.connectors.signal_connector").setLevel(
        logging.WARNING
    )
    warnings.filterwarnings("ignore", message=".*treespec, LeafSpec.*")  # Lightning vs torch 2.13
    # Epoch metrics come from torchmetrics, whose compute() already reduced them across ranks.
    warnings.filterwarnings("ignore", message=".*when logging on epoch level in distributed.*")
    # A NaN loss stops the run with its own message (deeptune.callbacks.nonfinite).
    warnings.filterwarnings("ignore", message="Encountered `nan` values in tensor")
    # On a machine with SLURM's client (a login node), Lightning suggests `srun python ...` for
    # every run; deeptune submits through its launchers (hydra/launcher=slurm), whose jobs do run
    # under srun.
    warnings.filterwarnings("ignore", message="The `srun` command is available on your system")
