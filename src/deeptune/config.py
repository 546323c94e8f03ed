"""The validation phase: a composed config is checked here, in one place, before anything runs.

    validate(cfg)                       the schema: every key, type and range; before torch loads
    validate_against_machine(cfg)       what the machine must have: the GPU trainer=gpu asks for
    validate_against_data(cfg, data)    what depends on the data set (a Table, or a component
                                        data module's description): its task, its classes
    validate_against_model(cfg, net, dm) what depends on the built objects: the report's layer,
                                        batch norm against the batches

Each raises a ConfigError naming the key, the value and what is allowed. The schema of each
config node lives beside the code it configures (deeptune/<area>/schema.py), found through the
node's `_target_`; the rules here are the ones across nodes.
"""

import os
from collections.abc import Sequence
from pathlib import Path

from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

import deeptune.resolvers  # noqa: F401  (${monitored:...}: every config checked here resolves)
from deeptune import tasks
from deeptune.callbacks import schema as _callbacks  # noqa: F401  (each registers its nodes)
from deeptune.data import schema as _data  # noqa: F401
from deeptune.diagnostics import schema as _diagnostics  # noqa: F401
from deeptune.errors import ConfigError
from deeptune.lab import schema as _lab  # noqa: F401
from deeptune.loggers import schema as _loggers  # noqa: F401
from deeptune.models.schema import HIDDEN_LAYER_MODELS
from deeptune.optim.schema import CLOSURE_OPTIMIZERS
from deeptune.run import batched
from deeptune.run.schema import (
    ENSEMBLES,
    MIXED_PRECISIONS,
    EvalConfig,
    PredictConfig,
    TrainConfig,
)
from deeptune.schema import HYDRA_KEYS, MAX_SEED, OpenNode, Section, check_model, schema_for

# Shipped inside the package (Hydra's pkg:// search path), so a wheel finds them as an
# editable install does; users add their own with --config-dir or hydra.searchpath.
CONFIG_DIR = Path(__file__).resolve().parent / "configs"
CONFIG_PATH = "pkg://deeptune.configs"
REQUIRED_GROUPS = {
    "train": ("model", "data", "optimizer", "trainer", "paths"),
    "eval": ("paths",),
    "predict": ("paths",),
}


def validate(cfg: DictConfig, root: type[Section] = TrainConfig) -> dict:
    """Check the whole config; return it resolved, as plain containers."""
    name = {EvalConfig: "eval", PredictConfig: "predict"}.get(root, "train")
    for group in REQUIRED_GROUPS[name]:
        if cfg.get(group) is None:
            allowed = ", ".join(group_choices(group)) or "a mapping"
            raise ConfigError(group, None, f"required: choose one of {allowed}")
    plain = resolve(cfg)
    if missing := _missing(plain):
        raise ConfigError(
            missing, "???", f"required: set it on the command line, e.g. {missing}=<value>"
        )
    check_model(root, plain, "", "the config")
    if root is TrainConfig:
        _check_objective(plain)
    for key, node in _nodes(plain, source_only=root is EvalConfig):
        check_model(schema_for(node.get("_target_")), node, key, _what(node)).check(key)
    if root is TrainConfig:
        _check_run(plain)
    return plain


def resolve(cfg: DictConfig) -> dict:
    """Every ${...} resolved, or the key whose interpolation fails."""
    try:
        return OmegaConf.to_container(cfg, resolve=True, throw_on_missing=False)
    except OmegaConfBaseException as err:
        key = getattr(err, "full_key", None) or "?"
        value = OmegaConf.to_container(cfg, resolve=False)  # the ${...} as it was written
        for part in key.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        reason = str(err).splitlines()[0]
        raise ConfigError(key, value, f"cannot be resolved: {reason}") from None


def _missing(node, key: str = "") -> str | None:
    """The first key left at ??? (OmegaConf's mandatory value)."""
    if node == "???":
        return key
    if isinstance(node, list):
        node = dict(enumerate(node))
    for child, value in node.items() if isinstance(node, dict) else ():
        if found := _missing(value, f"{key}.{child}" if key else str(child)):
            return found
    return None


def _what(node: dict) -> str:
    target = node.get("_target_")
    return f"{str(target).rpartition('.')[2]} ({target})" if isinstance(target, str) else "it"


def _nodes(plain: dict, source_only: bool = False):
    """(key, node) of every `_target_` node the run builds, parents before children. eval.py's
    `data` is a source only (the checkpoint brings the scaling): source_only."""
    for group in ("model", "data", "optimizer", "scheduler", "trainer"):
        if group == "data" and source_only and plain.get(group):
            yield from _node_tree("data.source", plain[group].get("source"))
        elif plain.get(group):
            yield from _node_tree(group, plain[group])
    for group, kind in (("callbacks", "callback"), ("logger", "logger"), ("metrics", "metric")):
        for name, node in (plain.get(group) or {}).items():
            if node is None:  # <group>.<name>=null switches one off
                continue
            if not isinstance(node, dict) or "_target_" not in node:
                raise ConfigError(
                    f"{group}.{name}", node, f"a {kind} is a node with a _target_ (a class path)"
                )
            yield from _node_tree(f"{group}.{name}", node)


def _node_tree(key: str, node):
    if not isinstance(node, dict):
        raise ConfigError(key, node, "must be a mapping with a _target_")
    if "_target_" not in node:
        raise ConfigError(f"{key}._target_", None, "required: the class or function to build")
    yield key, node
    if node.get("_recursive_") is False:  # Hydra builds nothing below it
        return
    for child, value in node.items():
        if isinstance(value, dict) and "_target_" in value and child not in HYDRA_KEYS:
            yield from _node_tree(f"{key}.{child}", value)


def _check_objective(c: dict) -> None:
    configured = c.get("metrics") or {}
    for name in configured:
        if not str(name).isidentifier():
            raise ConfigError(
                f"metrics.{name}",
                configured[name],
                "a metric's name is logged as <split>/<name>: "
                "use letters, digits and _ (e.g. metrics.auroc)",
            )
        if name in tasks.all_metric_names():
            raise ConfigError(
                f"metrics.{name}",
                configured[name],
                f"{name} is a task's own metric, logged already: give yours another name",
            )
    check_objectives(c["optimized_metric"], [n for n, node in configured.items() if node])


def check_objectives(optimized_metric, configured=()) -> list[str]:
    """What the run optimises: a metric some task logs or one of the `metrics` group's
    (`configured`; which fit the data: once it is loaded), or a list of objectives for a
    multi-objective sweep, whose first is the watched metric and whose others may also be
    figures of the whole run (n_params, duration_s). The list, checked."""
    keys = tasks.objectives(optimized_metric)
    names = [*tasks.all_metric_names(), *configured]
    if not keys:
        raise ConfigError("optimized_metric", [], "a metric such as val/acc, or a list of them")
    for i, key in enumerate(keys):
        if i and key in tasks.RUN_FIGURES:
            continue
        split, _, name = key.partition("/")
        if name not in names or split not in tasks.MONITORED_SPLITS:
            split = split if split in tasks.MONITORED_SPLITS else "val"
            allowed = ", ".join(f"{split}/{n}" for n in names)
            if i:
                allowed += ", " + ", ".join(tasks.RUN_FIGURES)
            elif key in tasks.RUN_FIGURES:
                allowed += f" (a run figure such as {key} may be a later objective, not the first)"
            if key not in tasks.RUN_FIGURES and name not in names and name.isidentifier():
                allowed += f", or a metric you add (metrics=classification, +metrics.{name}=...)"
            where = f"optimized_metric[{i}]" if len(keys) > 1 else "optimized_metric"
            raise ConfigError(where, key, f"must be one of {allowed}")
    if len(set(keys)) < len(keys):
        raise ConfigError("optimized_metric", keys, "names an objective twice")
    return keys


def _check_run(c: dict) -> None:
    """The rules across the run's keys and nodes."""
    if c["ckpt_path"] is not None and not Path(c["ckpt_path"]).expanduser().is_file():
        raise ConfigError(
            "ckpt_path", c["ckpt_path"], "no such file; resume from a run's last.ckpt"
        )
    folds, fold = c["cv"]["folds"], c["cv"]["fold"]
    if fold is not None and not fold < folds > 1:
        raise ConfigError("cv.fold", fold, f"must be below cv.folds={folds} (set for each fold)")
    restarts, method = c["restarts"], c["ensemble"]
    if restarts > 1 and c["cv"]["folds"] > 1:
        raise ConfigError("restarts", restarts, "restarts > 1 cannot be combined with cv.folds > 1")
    if c["seed"] + restarts - 1 > MAX_SEED:
        raise ConfigError("restarts", restarts, f"seed + restarts - 1 must stay <= {MAX_SEED}")
    callbacks = c.get("callbacks") or {}
    if method in ENSEMBLES and restarts == 1:
        raise ConfigError("ensemble", method, "combines restarts: set restarts >= 2 as well")
    if method in ENSEMBLES and callbacks.get("model_checkpoint") is None:
        raise ConfigError(
            "ensemble",
            method,
            "needs each restart's best checkpoint: keep callbacks.model_checkpoint",
        )
    if (best := callbacks.get("model_checkpoint")) and not best.get("monitor"):
        raise ConfigError(
            "callbacks.model_checkpoint.monitor",
            best.get("monitor"),
            "required: the kept checkpoint is the best by this metric, e.g. ${optimized_metric} "
            "(callbacks.model_checkpoint=null keeps the last weights instead)",
        )
    scheduler, trainer = c.get("scheduler") or {}, c["trainer"]
    if (
        "ReduceLROnPlateau" in str(scheduler.get("_target_"))
        and (trainer.get("check_val_every_n_epoch", 1) or 1) > 1
    ):
        raise ConfigError(
            "trainer.check_val_every_n_epoch",
            trainer["check_val_every_n_epoch"],
            "scheduler=plateau steps on val/loss after every epoch: keep it at 1",
        )
    _check_closure_optimizer(c["optimizer"], trainer)
    ft = c["finetune"]
    if ft["from"] is not None and not Path(ft["from"]).expanduser().is_file():
        raise ConfigError(
            "finetune.from", ft["from"], "no such file; pass a run's checkpoints/best.ckpt"
        )
    _check_layer_schedules(c)
    batched.check(c)  # restarts_backend=batched: the knobs it cannot batch


def _check_closure_optimizer(optimizer: dict, trainer: dict) -> None:
    """L-BFGS re-evaluates one batch's loss many times per step (a closure): Lightning would
    add those evaluations' gradients to the batches it accumulates, and refuses autocast."""
    if optimizer.get("_target_") not in CLOSURE_OPTIMIZERS:
        return
    if (accumulate := trainer.get("accumulate_grad_batches") or 1) > 1:
        raise ConfigError(
            "trainer.accumulate_grad_batches",
            accumulate,
            "optimizer=lbfgs steps on one batch at a time: keep it at 1 (a larger "
            "data.batch_size gives it more samples per step)",
        )
    precision = trainer.get("precision")
    if precision in MIXED_PRECISIONS or precision == "auto":
        picks = " (auto picks bf16-mixed on a GPU)" if precision == "auto" else ""
        raise ConfigError(
            "trainer.precision",
            precision,
            f"optimizer=lbfgs cannot run under autocast{picks}: use 32-true",
        )


def _check_layer_schedules(c: dict) -> None:
    """Step-wise training and frozen layers work on a network's hidden blocks (net.hidden): the
    known ones are checked against model.depth here, any other once built
    (validate_against_model)."""
    freeze, strategy = c["finetune"]["freeze"], c["stepwise"]["strategy"]
    model = c["model"]
    target = model.get("_target_")
    if target not in HIDDEN_LAYER_MODELS:
        if schema_for(target) is not OpenNode:  # one of deeptune's, without hidden blocks
            _no_hidden_blocks(strategy, freeze, target)
    else:
        depth = model.get("depth", 2)
        if any(i >= depth for i in freeze):
            raise ConfigError(
                "finetune.freeze",
                freeze,
                f"must be a list of hidden layer indices in 0..{depth - 1} (model.depth={depth})",
            )
    if freeze and strategy != "none":
        raise ConfigError(
            "finetune.freeze", freeze, "cannot be combined with stepwise.strategy; use one"
        )


def _no_hidden_blocks(strategy: str, freeze: list, target) -> None:
    for key, value in (("stepwise.strategy", strategy), ("finetune.freeze", freeze)):
        if value not in ("none", []):
            raise ConfigError(
                key,
                value,
                "works on a network's hidden blocks (net.hidden: model=mlp, cnn, transformer), "
                f"and {target} has none",
            )


# ---------------------------------------------------------------------------------------------
# What the machine must have: checked as soon as torch is imported, before the data loads


def validate_against_machine(cfg: DictConfig) -> None:
    """`trainer.accelerator=gpu` / `cuda` (trainer=gpu) where torch sees no GPU, or more
    devices than there are: one line now, not Lightning's error once everything is built."""
    trainer = cfg.get("trainer") or {}
    accelerator = str(trainer.get("accelerator"))
    if accelerator not in ("gpu", "cuda"):
        return
    import torch

    if accelerator == "gpu" and torch.backends.mps.is_available():
        return  # Lightning's "gpu" is Apple's MPS there; it counts those devices itself
    found = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if not found:
        if torch.version.cuda is None:
            why = f"torch {torch.__version__} is a CPU-only build"
        else:
            hidden = os.environ.get("CUDA_VISIBLE_DEVICES")
            why = "no CUDA GPU is visible" + (
                f" (CUDA_VISIBLE_DEVICES={hidden!r})" if hidden is not None else ""
            )
        raise ConfigError(
            "trainer.accelerator",
            accelerator,
            f"{why}: use trainer=default (a GPU when there is one, else the CPU) or trainer=cpu",
        )
    devices = trainer.get("devices")
    wanted = devices if isinstance(devices, int) and devices > 0 else None
    if isinstance(devices, (list, ListConfig)):
        wanted = max(devices, default=-1) + 1
    if wanted is not None and wanted > found:
        raise ConfigError(
            "trainer.devices", devices, f"this machine has {found} CUDA GPU(s) (0-{found - 1})"
        )


# ---------------------------------------------------------------------------------------------
# After the data set is loaded, after the network is built


def validate_against_data(cfg: DictConfig, table) -> dict[str, str]:
    """The metrics, the objective, the watched metrics, the ensemble, the folds and the report
    fit the data set: a classification is judged by acc, f1 or loss, a regression by mse, r2 or
    loss, and either by the `metrics` group's that score it. `table`: the Table, or a component
    data module's description (deeptune.data.component), whose folds it checks as it can.
    {name: 'max' or 'min'} of every value the `metrics` group logs, for metrics.json."""
    from deeptune.data.component import ComponentData, check_folds

    task = tasks.task(table.task)
    component = isinstance(table, ComponentData)
    if component:
        check_folds(cfg, table)
    data = table.name if component else str(cfg.data.source.get("_target_")).rpartition(".")[2]
    shape = tuple(table.input_shape) if component else tuple(table.x.shape[1:])
    _check_input_shape(cfg.model, shape, data)
    if component and table.vocab_size is not None:
        _check_token_input(cfg.model, table.vocab_size, data)
    configured = {}
    if cfg.get("metrics"):  # torchmetrics (and torch) load only for a run that has some
        from deeptune import metrics

        configured = metrics.check(cfg.metrics, table, data)
    modes = {n: task.metric(n).mode for n in task.names}
    modes |= {n: c.mode for n, c in configured.items() if c.mode and not c.per_class}
    # The objectives other than the first are not watched, so no mode applies to them.
    keys = tasks.objectives(cfg.optimized_metric)
    watched = [("optimized_metric", keys[0], "optimized_mode", cfg.optimized_mode)]
    watched += [
        (f"optimized_metric[{i}]", key, None, None)
        for i, key in enumerate(keys)
        if i and key not in tasks.RUN_FIGURES
    ]
    for name, node in (cfg.get("callbacks") or {}).items():
        if node is not None and node.get("monitor"):
            # Lightning's ModelCheckpoint and EarlyStopping watch for a fall unless told otherwise
            has_mode = "mode" in schema_for(node.get("_target_")).model_fields
            mode = node.get("mode", "min") if has_mode else None
            key = f"callbacks.{name}"
            watched.append((f"{key}.monitor", node.monitor, f"{key}.mode", mode))
    for key, metric, mode_key, mode in watched:
        split, _, name = metric.partition("/")
        if name not in modes:
            why = _not_watchable(cfg, task, data, key, split, name, modes, configured)
            raise ConfigError(key, metric, why)
        best = modes[name]
        if mode is not None and mode != best:
            higher = "higher" if best == "max" else "lower"
            fix = f"set {mode_key}={best}" if mode_key == "optimized_mode" else f"use {best}"
            raise ConfigError(mode_key, mode, f"{metric} is better when {higher}: {fix}")
    if task.name == "regression" and cfg.ensemble in ("mean_prob", "majority_vote"):
        raise ConfigError(
            "ensemble",
            cfg.ensemble,
            f"{data} is a regression data set: use mean_logit (the mean of the restarts' "
            "predictions) or none",
        )
    if cfg.report.confusion and task.name != "classification":
        raise ConfigError(
            "report.confusion", True, "needs a classification data set (this one is regression)"
        )
    folds = cfg.cv.folds
    if component:  # its sizes are the module's own: it refuses a split it cannot make
        pass
    elif folds > 1 and task.name == "classification":
        smallest = min(int((table.y == k).sum()) for k in range(len(table.classes)))
        if smallest < folds:
            raise ConfigError(
                "cv.folds", folds, f"the smallest class has {smallest} samples: at most {smallest}"
            )
    elif folds > len(table.y) // 2:
        raise ConfigError(
            "cv.folds", folds, f"at most {len(table.y) // 2} for {len(table.y)} samples"
        )
    return {n: c.mode for c in configured.values() for n in c.logged if c.mode}


def _check_input_shape(model: DictConfig, shape: tuple[int, ...], data: str) -> None:
    """The network reads samples of this shape's rank (a CNN images, a Transformer sequences)."""
    node = schema_for(model.get("_target_"))
    ranks = getattr(node, "INPUT_RANKS", None)
    if ranks is None or len(shape) in ranks:
        return
    name = str(model.get("_target_")).rpartition(".")[2]
    raise ConfigError(
        "model",
        name,
        f"data={data} gives samples of shape {shape}, and it needs {node.INPUT_HINT}",
    )


def _check_token_input(model: DictConfig, vocab_size: int, data: str) -> None:
    """Token ids are indices into an embedding: a network that takes no vocab_size cannot read
    them (an MLP would multiply the ids as if they were numbers)."""
    from deeptune.builders import locate
    from deeptune.data.component import takes

    target = str(model.get("_target_"))
    if not takes(locate(target, "model"), "vocab_size"):
        raise ConfigError(
            "model",
            target.rpartition(".")[2],
            f"data={data} gives token ids (vocab_size={vocab_size}), and it takes no vocab_size "
            "to embed them: use model=transformer, or a network of yours that takes vocab_size",
        )


def _not_watchable(cfg, task, data, key, split, name, modes, configured) -> str:
    """Why `name` cannot be watched on this data set, and what can."""
    if (cfg.get("metrics") or {}).get(name) is not None:
        if name not in configured:
            return f"metrics.{name} is not logged on {data} (the warning above says why)"
        if configured[name].per_class:
            shown = ", ".join(f"{split}/{n}" for n in configured[name].logged[:2])
            return f"metrics.{name} returns one value per class ({shown}, ...): watch one number"
        return f"metrics.{name} does not say which way is better (its higher_is_better is None)"
    allowed = ", ".join(f"{split}/{n}" for n in modes)
    if key == "optimized_metric":  # both keys at once: the mode follows the metric
        head = task.metric(task.headline)
        allowed += f" (e.g. {key}={split}/{head.name} optimized_mode={head.mode})"
    return f"{data} is a {task.name} data set: use one of {allowed}"


def validate_against_model(cfg: DictConfig, net, datamodule) -> None:
    """Fail before training, not after it: the report's layer exists, and batch norm never
    gets a training batch of one sample (it cannot normalise it, and torch stops the run)."""
    if cfg.report.tsne:
        from deeptune.diagnostics.final_model import hooked_module

        hooked_module(net, cfg.report.tsne_layer)
    _check_hidden_layers(cfg, net)
    norms = [m for m in net.modules() if type(m).__name__.startswith("BatchNorm")]
    if norms and getattr(datamodule, "smallest_train_batch", None) == 1:
        raise ConfigError(
            "data.batch_size",
            cfg.data.get("batch_size"),
            f"{datamodule.train_size} training samples leave a batch of one sample, which batch "
            "norm cannot normalise: use another batch size, or model.norm=layer",
        )


def _check_hidden_layers(cfg: DictConfig, net) -> None:
    """Step-wise training and frozen layers work on any network with a `hidden` ModuleList."""
    from torch import nn

    freeze, strategy = list(cfg.finetune.freeze), cfg.stepwise.strategy
    asked = [
        (key, value)
        for key, value in (("stepwise.strategy", strategy), ("finetune.freeze", freeze))
        if value not in ("none", [])
    ]
    if not asked:
        return
    hidden = getattr(net, "hidden", None)
    if not isinstance(hidden, nn.ModuleList):
        key, value = asked[0]
        raise ConfigError(
            key,
            value,
            "works on the hidden layers of a network with a `hidden` nn.ModuleList (as "
            f"model=mlp has); {type(net).__name__} ({cfg.model._target_}) has none",
        )
    if any(i >= len(hidden) for i in freeze):
        raise ConfigError(
            "finetune.freeze",
            freeze,
            f"must be a list of hidden layer indices in 0..{len(hidden) - 1} "
            f"({type(net).__name__} has {len(hidden)})",
        )


# ---------------------------------------------------------------------------------------------
# Deriving a config, and the groups' choices


def derive(cfg: DictConfig, updates: dict[str, object]) -> DictConfig:
    """A new config: `cfg` with the dotted keys of `updates` set (the original is untouched).

    The run pipeline derives each part's config (a fold, a restart, the folder an interrupted
    run continues in) this way, so every config a part saves says exactly what it ran."""
    nested: dict = {}
    for dotted, value in updates.items():
        *parents, leaf = dotted.split(".")
        node = nested
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    derived = OmegaConf.merge(cfg, nested)
    if isinstance(derived, (DictConfig, ListConfig)):
        OmegaConf.set_struct(derived, OmegaConf.is_struct(cfg))
    return derived


def group_choices(group: str, dirs: Sequence[Path] = ()) -> list[str]:
    """The selectable options of a config group: its yaml files, in deeptune's configs and in
    the user's config folders."""
    found = {p.stem for d in (CONFIG_DIR, *dirs) for p in (Path(d) / group).glob("*.yaml")}
    return sorted(found)


def user_config_dirs(argv: Sequence[str]) -> list[Path]:
    """The config folders a command line adds to Hydra's search path: `--config-dir DIR`
    (`-cd DIR`) and the file:// / pkg:// entries of a `hydra.searchpath=[...]` override."""
    dirs: list[str] = []
    args = list(argv)
    for i, arg in enumerate(args):
        if arg in ("--config-dir", "-cd") and i + 1 < len(args):
            dirs.append(args[i + 1])
        elif arg.startswith("--config-dir="):
            dirs.append(arg.partition("=")[2])
        elif arg.lstrip("+").startswith("hydra.searchpath="):
            entries = arg.partition("=")[2].strip("[]")
            dirs += [e.strip().strip("'\"") for e in entries.split(",") if e.strip()]
    return [d for d in map(_search_path_dir, dirs) if d is not None]


def _search_path_dir(entry: str) -> Path | None:
    if entry.startswith("pkg://"):
        from importlib.util import find_spec

        try:
            spec = find_spec(entry.removeprefix("pkg://").replace("/", "."))
        except (ImportError, ValueError):
            return None
        locations = list(spec.submodule_search_locations or []) if spec else []
        return Path(locations[0]) if locations else None
    return Path(entry.removeprefix("file://"))


def check_group_overrides(overrides: Sequence[str], dirs: Sequence[Path] = ()) -> None:
    """Name the bad choice and the allowed ones for `group=choice` overrides, before Hydra.

    Hydra's own message for a missing choice spans a dozen lines; this says it in one. `dirs`
    are the user's config folders (user_config_dirs), whose choices count too.
    """
    from hydra.core.override_parser.overrides_parser import OverridesParser

    try:
        parsed = OverridesParser.create().parse_overrides(list(overrides))
    except Exception:  # malformed overrides: reported by the entry point
        return
    for override in parsed:
        group = override.key_or_group
        if group == "hydra/launcher" and not override.is_delete():
            _check_launcher_extra(str(override.value()))
        if (
            override.is_delete()
            or group.startswith("hydra")
            or override.package
            or not any((Path(d) / group).is_dir() for d in (CONFIG_DIR, *dirs))
        ):
            continue
        values = (
            list(override.sweep_string_iterator())
            if override.is_sweep_override()
            else [override.value()]
        )
        allowed = group_choices(group, dirs)
        for value in values:
            for choice in value if isinstance(value, list) else [value]:
                if choice is None or str(choice) not in allowed:
                    shown = "null" if choice is None else str(choice)
                    raise ConfigError(group, shown, "choose one of " + ", ".join(allowed))


SLURM_LAUNCHERS = ("slurm", "slurm_local", "submitit_slurm")  # they submit with sbatch
SLURM_CLIENT = ("sbatch", "srun")  # submitit's SlurmExecutor refuses to start without srun


def _check_launcher_extra(choice: str) -> None:
    """Hydra cannot compose a launcher whose plugin is missing, and says so in a dozen lines;
    a SLURM launcher without SLURM's commands ends in submitit's traceback, after the sweep
    folder is made."""
    import shutil

    from deeptune import extras

    if extra := extras.LAUNCHER_EXTRAS.get(choice):
        extras.require(extra, "hydra/launcher", choice, f"the {choice} launcher")
    missing = [command for command in SLURM_CLIENT if shutil.which(command) is None]
    if choice in SLURM_LAUNCHERS and missing:
        raise ConfigError(
            "hydra/launcher",
            choice,
            f"no SLURM client here ({' and '.join(missing)} not on PATH): submit from a "
            "cluster's login node, or start the single-node test cluster "
            "(scripts/slurm/start-slurm.sh, as root) and use hydra/launcher=slurm_local",
        )
