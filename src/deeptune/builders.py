"""Objects built from the config: the data, the model, the loggers, the callbacks, the trainer.

Each comes from one config node through hydra.utils.instantiate. Before a node is built its keys
are held to its target's signature, and whatever the target raises while it is built is
reported against the node's key (or the key the message names), so a value that torch or
Lightning refuses is one line naming it. `train`, `eval` and `load_run` share these, so a
checkpoint is always read back into the same network.
"""

import difflib
import importlib
import inspect
import logging
import re
import sys
from collections.abc import Mapping
from functools import partial
from typing import TYPE_CHECKING

from omegaconf import DictConfig, open_dict

from deeptune.data.schema import DataNode
from deeptune.errors import ConfigError
from deeptune.models.schema import NetNode
from deeptune.run.schema import TrainerNode

if TYPE_CHECKING:  # the sources import scikit-learn, a second that --help should not pay
    from deeptune.data.component import ComponentData
    from deeptune.data.sources import Table

log = logging.getLogger(__name__)


def build(node: DictConfig, key: str, **kwargs):
    """hydra.utils.instantiate, with its failures reported against the config key."""
    from hydra.errors import InstantiationException
    from hydra.utils import instantiate  # imported here: 0.2 s a config error need not pay

    check_arguments(node, key, injected=kwargs)
    try:
        return instantiate(node, **kwargs)
    except InstantiationException as err:
        cause = err.__cause__ or err
        if isinstance(cause, ConfigError):
            raise cause from None
        raise refused(node, key, cause) from None


def refused(node: DictConfig, key: str, err: BaseException) -> ConfigError:
    """The error of a target that refused its arguments, against the key its message names."""
    message = " ".join(str(err).split())[:300] or type(err).__name__
    for name in sorted((k for k in node if not str(k).startswith("_")), key=len, reverse=True):
        if re.search(rf"(?<![\w.]){re.escape(str(name))}(?!\w)", message):
            return ConfigError(f"{key}.{name}", node.get(name), f"{type(err).__name__}: {message}")
    return ConfigError(key, node.get("_target_"), f"{type(err).__name__}: {message}")


def check_arguments(node: DictConfig, key: str, injected=(), passed_on=None) -> None:
    """Refuse a key the target does not take (`+optimizer.momentun=0.9`), naming the nearest.
    A target with **kwargs takes anything, unless `passed_on` names what they go to; a class's
    bases' arguments count then too (a subclass passing its **kwargs up)."""
    target = locate(node._target_, key)
    try:
        params = inspect.signature(target).parameters
    except (TypeError, ValueError):  # no signature to hold the keys to (a C function)
        return
    open_ended = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    if open_ended and passed_on is None:
        return
    signatures = [params]
    if open_ended and isinstance(target, type):
        bases = [b for b in target.__mro__[1:-1] if "__init__" in vars(b)]  # not object
        signatures += [inspect.signature(b.__init__).parameters for b in bases]
    named = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
    taken = [n for ps in signatures for n, p in ps.items() if p.kind not in named and n != "self"]
    taken = list(dict.fromkeys([*taken, *(passed_on or ())]))
    for name in node:
        name = str(name)
        if name.startswith("_") or name in taken or name in injected:
            continue
        close = difflib.get_close_matches(name, taken, n=1, cutoff=0.6)
        hint = f"did you mean {key}.{close[0]}?" if close else f"it takes {', '.join(taken)}"
        what = str(node._target_).rpartition(".")[2]
        raise ConfigError(f"{key}.{name}", node.get(name), f"{what} takes no {name}; {hint}")


def locate(path: str, key: str):
    """The class or function at a dotted path, or a ConfigError naming `key`._target_.

    Written here rather than hydra.utils.get_object, which logs every miss at ERROR level (a
    multi-line message on the console) before it raises."""
    parts = path.split(".")
    for i in range(len(parts), 0, -1):
        module = ".".join(parts[:i])
        try:
            found = importlib.import_module(module)
        except ModuleNotFoundError as err:
            if err.name and module.startswith(err.name):
                continue  # no such module: try its parent
            raise ConfigError(f"{key}._target_", path, f"cannot import it: {err}") from None
        try:
            for attr in parts[i:]:
                found = getattr(found, attr)
        except AttributeError:
            break
        return found
    raise ConfigError(f"{key}._target_", path, "no such class or function")


def source(cfg: DictConfig) -> "Table":
    """The data set (numpy / scikit-learn only: it loads before torch is imported)."""
    return build(cfg.data.source, "data.source")


def without(node: DictConfig, keys) -> DictConfig:
    """A copy of `node` without `keys` (its parent stays, so ${...} still resolve)."""
    node = node.copy()
    with open_dict(node):
        for key in keys:
            node.pop(key, None)
    return node


def data(cfg: DictConfig) -> "Table | ComponentData":
    """The data every run mode carries: the `Table` of `data.source` (the tensor path), or the
    description of a component data module (a `data._target_` of the user's:
    deeptune.data.component)."""
    from deeptune.data import component

    if component.is_component(cfg.data):
        return component.describe(cfg)
    return source(cfg)


def datamodule(cfg: DictConfig, data: "Table | ComponentData"):
    """One fit's data module: the table's split, or a fresh component module set up for fit."""
    from deeptune.data.component import ComponentData

    fold = (cfg.cv.fold, cfg.cv.folds) if cfg.cv.fold is not None else None
    if isinstance(data, ComponentData):  # the module reads its own data
        return component_datamodule(cfg, fold=fold)
    # The table is built already; the shortcuts were for the source.
    node = without(cfg.data, ("source", *DataNode.BUILDER_KEYS))
    return build(node, "data", source=data, fold=fold)


def component_module(cfg: DictConfig, fold: tuple[int, int] | None = None):
    """A component data module as constructed (cheap, reads nothing): what a checkpoint rebuilds
    before `load_state_dict`. `fold` goes to a constructor that takes one."""
    from deeptune.data.component import constructor_node, takes

    target = locate(cfg.data._target_, "data")
    extra = {"fold": fold} if fold is not None and takes(target, "fold") else {}
    return build(constructor_node(cfg.data, target), "data", **extra)


def component_datamodule(cfg: DictConfig, fold: tuple[int, int] | None = None):
    """A component data module prepared and set up for fit, as the contract promises, before
    the trainer exists (Lightning sets it up again inside trainer.fit: setup must be idempotent)."""
    dm = component_module(cfg, fold)
    what = str(cfg.data._target_).rpartition(".")[2]
    steps = (("prepare_data()", dm.prepare_data), ("setup('fit')", lambda: dm.setup("fit")))
    for step, call in steps:
        try:
            call()
        except ConfigError:
            raise
        except Exception as err:  # a missing folder, a bad path: one line, the cause chained
            message = " ".join(str(err).split())[:300] or type(err).__name__
            why = f"{what}.{step} failed: {type(err).__name__}: {message}"
            raise ConfigError("data._target_", cfg.data._target_, why) from err
    return dm


def module(cfg: DictConfig, dm, pretrained: bool = True):
    """The network in the LightningModule of the data's task; `finetune.from` loads weights
    (unless pretrained=False: a checkpoint is about to overwrite them)."""
    from deeptune.data.component import contract, takes
    from deeptune.models.module import module_class

    dm = contract(dm)  # a component module's attributes, checked, its defaults filled in
    # Every model takes the same two: one sample's shape and the number of outputs.
    node = without(cfg.model, NetNode.BUILDER_KEYS)
    # debug=overfit asks for model.dropout=0: a network without a dropout knob has none already
    if node.get("dropout") == 0 and not takes(locate(node._target_, "model"), "dropout"):
        node = without(node, ("dropout",))
    shape = {"input_shape": list(dm.input_shape), "outputs": dm.num_outputs}
    if (vocab := getattr(dm, "vocab_size", None)) is not None:  # token ids: the net embeds them
        shape["vocab_size"] = vocab
    net = build(node, "model", **shape)
    optimizer = optimizer_factory(cfg.optimizer)
    scheduler = build(cfg.scheduler, "scheduler") if cfg.get("scheduler") else None
    _probe(cfg, optimizer, scheduler)
    ft = cfg.finetune
    # A saved config from before `model.compile` existed has no such key: eager.
    task_module = partial(
        module_class(dm.task),
        compile=bool(cfg.model.get("compile")),
        metrics=cfg.get("metrics"),  # the `metrics` group's, beside the task's own
        classes=class_names(dm),
    )
    if not (pretrained and ft["from"]):
        return task_module(net, dm.num_outputs, optimizer, scheduler)
    from deeptune.models.pretrained import check_frozen_were_loaded, load_pretrained

    report = load_pretrained(net, ft["from"])
    check_frozen_were_loaded(list(ft.freeze), report)
    # The head always learns at the full rate, even when its shape let it be loaded.
    old = [n for n in report["loaded"] if not n.startswith("head.")]
    model = task_module(
        net, dm.num_outputs, optimizer, scheduler, pretrained=old, lr_scale=ft.lr_scale
    )
    model.finetune_report = report
    return model


def optimizer_factory(node: DictConfig):
    """The optimiser's partial; `fused: auto` resolved per call (deeptune.optim.fused)."""
    if node.get("fused") != "auto":
        return build(node, "optimizer")
    from deeptune.optim import fused

    return fused.auto(build(without(node, ("fused",)), "optimizer"), node)


def class_names(dm) -> list[str]:
    """The data set's class names, in the network's output order ([] for a regression)."""
    classes = getattr(dm, "classes", None)
    if classes is None:
        classes = getattr(getattr(dm, "table", None), "classes", None)
    return [str(c) for c in classes or ()]


def _probe(cfg: DictConfig, optimizer, scheduler) -> None:
    """Build the optimiser and the schedule once on a stand-in parameter: torch checks their
    arguments only when they are made, which is inside trainer.fit."""
    import torch

    stand_in = [torch.nn.Parameter(torch.zeros(1))]
    try:
        probe = optimizer(stand_in)
    except Exception as err:
        raise refused(cfg.optimizer, "optimizer", err) from None
    if scheduler is not None:
        try:
            scheduler(probe)
        except Exception as err:
            raise refused(cfg.scheduler, "scheduler", err) from None


def loggers(cfg: DictConfig) -> dict:
    """{name: logger}; `logger.<name>=null` switches one off."""
    built = {}
    for name, node in (cfg.get("logger") or {}).items():
        if node is None:
            continue
        if "start" in node:  # W&B's node: logger=default starts it only where it pays
            from deeptune.loggers import wandb

            node, start = without(node, ("start",)), node.start
            if start == "when_available" and not wandb.asked_for():
                # not started, but its keys checked all the same: a typo there would otherwise
                # surface only on the machine that has a key
                check_arguments(node, f"logger.{name}", passed_on=wandb.init_keywords())
                _say_once(wandb.HINT)
                continue
        built[name] = build(node, f"logger.{name}")
    return built


_hinted: set[str] = set()


def _say_once(line: str) -> None:
    """A hint a multirun's jobs would otherwise repeat."""
    from deeptune.console import say

    if line not in _hinted:
        _hinted.add(line)
        say(line)


def callbacks(cfg: DictConfig, has_logger: bool) -> dict:
    """{name: callback}; `callbacks.<name>=null` switches one off, and a run mode's callback
    that has nothing to do (no stepwise strategy, nothing frozen, no trial) builds None."""
    built = {}
    for name, node in (cfg.get("callbacks") or {}).items():
        if node is None:
            continue
        if "LearningRateMonitor" in node._target_ and not has_logger:
            continue  # Lightning refuses it without a logger
        if "ProgressBar" in node._target_ and not sys.stdout.isatty():
            continue  # in a log file a bar is noise, and its redraws cost CPU
        if (callback := build(node, f"callbacks.{name}")) is not None:
            built[name] = callback
    return built


def trainer(cfg: DictConfig, callbacks: list, **kwargs):
    import torch
    from lightning.pytorch.callbacks import ModelCheckpoint, ProgressBar

    from deeptune.console import quiet_lightning

    quiet_lightning()  # before the trainer says anything: each line once, not twice

    node = without(cfg.trainer, TrainerNode.BUILDER_KEYS)
    # Not a Trainer argument: a process-wide torch setting, set for every run so that one
    # run's choice does not leak into the next in the same process (a sweep, the tests).
    if (matmul := cfg.trainer.get("float32_matmul_precision")) is not None:
        torch.set_float32_matmul_precision(matmul)
    if node.get("precision") == "auto":
        with open_dict(node):
            node.precision = auto_precision(node.get("accelerator"))
    # Without a configured ModelCheckpoint or progress bar, Lightning would add its own.
    kwargs.setdefault(
        "enable_checkpointing", any(isinstance(c, ModelCheckpoint) for c in callbacks)
    )
    kwargs.setdefault("enable_progress_bar", any(isinstance(c, ProgressBar) for c in callbacks))
    # Checkpoints staged next to their file, not in $TMPDIR; left alone when the config names
    # plugins, or a strategy object that may bring its own writer (Lightning refuses two).
    if cfg.trainer.get("plugins") is None and not isinstance(cfg.trainer.get("strategy"), Mapping):
        from deeptune.checkpoints import LocalCheckpointIO

        kwargs.setdefault("plugins", [LocalCheckpointIO()])
    return build(node, "trainer", callbacks=callbacks, **kwargs)


def auto_precision(accelerator: str | None) -> str:
    """`trainer.precision=auto` (trainer=gpu): bfloat16 autocast on a GPU that computes in
    bfloat16 natively (NVIDIA Ampere and newer; emulated bfloat16 would be slower than float32),
    else float32. The CPU keeps float32: few CPUs compute bfloat16 faster."""
    import torch

    gpu = accelerator in ("auto", "gpu", "cuda", None) and torch.cuda.is_available()
    if gpu and _native_bf16():
        chosen, why = "bf16-mixed", f"{torch.cuda.get_device_name()} computes in bfloat16"
    else:
        chosen, why = "32-true", "no GPU that computes in bfloat16 natively"
    log.info("trainer.precision=auto: %s (%s)", chosen, why)
    return chosen


def _native_bf16() -> bool:
    import torch

    try:
        return torch.cuda.is_bf16_supported(including_emulation=False)
    except TypeError:  # an older torch takes no argument and counts native bfloat16 only
        return torch.cuda.is_bf16_supported()
