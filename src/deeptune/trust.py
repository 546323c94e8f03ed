"""A saved run folder is data, never code.

Whatever rebuilds a run from files this process did not just write (eval.py, ensembles, the lab's
analysis, fine-tuning) instantiates only targets deeptune rebuilds runs from:
- the targets deeptune's own configs use (every one with a schema, deeptune.schema.SCHEMAS), and
  deeptune's own classes;
- classes of torch.optim (optimisers, learning-rate schedules), of torch.nn (modules), of
  lightning.pytorch.callbacks and .loggers, torchmetrics' metrics (the `metrics` group) and
  scikit-learn's data sets (make_* / load_* / fetch_*).
Any other `_target_` (numpy.load with allow_pickle, torch.load, pandas.read_pickle, a writer)
could run what the folder's author chose, so it is refused with one line naming the key, the
target and `trust_config=true`, which lets a run built on a legitimate custom class through. The
check reads the dotted path before it imports anything: importing a module runs its code too.

Checkpoints are read with weights_only=True everywhere (`read_checkpoint`, and Lightning's own
loads, given `weights_only=True` explicitly: torch's default changed in 2.6 and an older torch
would unpickle anything).
"""

import inspect
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path

from deeptune.errors import ConfigError

TRUST_KEY = "trust_config"
_CLASS_AREAS = {  # module prefix -> the base class its targets must derive from
    "torch.optim": "torch.optim.Optimizer",
    "torch.optim.lr_scheduler": "torch.optim.lr_scheduler.LRScheduler",
    "torch.nn": "torch.nn.Module",
    "lightning.pytorch.callbacks": "lightning.pytorch.callbacks.Callback",
    "lightning.pytorch.loggers": "lightning.pytorch.loggers.Logger",
    "torchmetrics": "torchmetrics.Metric",
}
_DATA_SETS = ("sklearn.datasets.", ("make_", "load_", "fetch_"))
ALLOWED_TEXT = (
    "deeptune rebuilds saved runs only from its own targets, torch.optim, torch.nn, "
    "lightning.pytorch callbacks and loggers, torchmetrics metrics and scikit-learn data sets"
)

_trusted: ContextVar[bool] = ContextVar("trusted", default=False)
_own: ContextVar[frozenset] = ContextVar("own_targets", default=frozenset())


@contextmanager
def trusting(trusted: bool):
    """Within this block, saved configs may name any target (the command's trust_config=true)."""
    token = _trusted.set(bool(trusted))
    try:
        yield
    finally:
        _trusted.reset(token)


@contextmanager
def own_targets(cfg):
    """Within this block, saved configs may name the targets the running config names: a run
    reading back its own restarts (the ensemble) just wrote them, a user's data module or
    network included. A saved run read later by another command still needs trust_config."""
    from omegaconf import OmegaConf

    plain = OmegaConf.to_container(cfg, resolve=True)
    token = _own.set(_own.get() | {t for _, t in _targets(plain) if isinstance(t, str)})
    try:
        yield
    finally:
        _own.reset(token)


def check_saved_config(config: dict, origin: Path) -> None:
    """Refuse a config read from `origin` that names a target outside the allow-list."""
    if _trusted.get():
        return
    own = _own.get()
    refused = [
        (key, target)
        for key, target in _targets(config)
        if target not in own and not allowed(target)
    ]
    # A node copied by interpolation (callbacks.grad_health.model) is named by its origin.
    for key, target in sorted(refused, key=lambda kt: kt[0].count("."))[:1]:
        raise ConfigError(
            f"{key}._target_",
            target,
            f"{origin} is not trusted to run it: {ALLOWED_TEXT}; if you trust that folder, "
            f"pass deeptune.load(path, {TRUST_KEY}=True) in Python, or add {TRUST_KEY}=true",
        )


def check_member(member: Path, folder: Path, manifest: Path) -> None:
    """An ensemble's member must lie inside the ensemble's own run folder."""
    if _trusted.get() or Path(member).resolve().is_relative_to(Path(folder).resolve()):
        return
    raise ConfigError(
        "ckpt_path",
        str(manifest),
        f"its member {member} lies outside {folder}; "
        f"if you trust that checkpoint, add {TRUST_KEY}=true",
    )


def allowed(target) -> bool:
    if not isinstance(target, str):
        return False
    from deeptune.schema import SCHEMAS

    if target in SCHEMAS:
        return True
    if target.startswith("deeptune."):
        return inspect.isclass(obj := _locate(target)) and obj.__module__.startswith("deeptune.")
    prefix, names = _DATA_SETS
    if target.startswith(prefix):
        return target.rpartition(".")[2].startswith(names) and callable(_locate(target))
    for area, base in sorted(_CLASS_AREAS.items(), reverse=True):  # the longest prefix first
        if target.startswith(area + "."):
            obj = _locate(target)
            return inspect.isclass(obj) and issubclass(obj, _locate(base))
    return False


def _locate(path: str):
    from deeptune.builders import locate

    try:
        return locate(path, "_target_")
    except ConfigError:
        return None


def _targets(node, key: str = ""):
    """(key, target) of every `_target_` in a plain config, nested ones included."""
    if isinstance(node, dict):
        if "_target_" in node:
            yield key or "<config>", node["_target_"]
        for name, value in node.items():
            yield from _targets(value, f"{key}.{name}" if key else str(name))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _targets(value, f"{key}[{i}]")


def read_checkpoint(path: Path, key: str) -> dict:
    """A Lightning checkpoint, tensors and plain values only; a file that is unreadable or holds
    anything else is a ConfigError at `key` that does not suggest loading it unsafely."""
    import pickle
    import zipfile

    import torch

    path = Path(path)
    # torch.save has written zip archives since torch 1.6; anything else (a file cut short, a
    # pickle) would reach torch's legacy unpickler, whose refusals read like a blocked object.
    if not zipfile.is_zipfile(path):
        raise ConfigError(
            key, str(path), "cannot read the checkpoint: truncated, or not a file torch.save wrote"
        )
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:  # weights_only refused an object: it would run code
        raise ConfigError(
            key,
            str(path),
            "the checkpoint holds objects other than tensors and plain values, which deeptune "
            "does not load (they can run code); pass a checkpoint written by train.py",
        ) from None
    except Exception as err:  # truncated, empty, not a zip archive (torch's errors vary)
        lines = str(err).splitlines()
        reason = lines[0][:120] if lines and not isinstance(err, KeyError) else type(err).__name__
        raise ConfigError(
            key, str(path), f"cannot read the checkpoint: truncated or not one ({reason})"
        ) from None
    if not isinstance(state, dict) or "state_dict" not in state:
        raise ConfigError(key, str(path), "not a Lightning checkpoint (no state_dict)")
    return state
