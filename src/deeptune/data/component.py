"""A user's own LightningDataModule (`data._target_: mypkg.data.MyData`): what deeptune reads of it.

The pipeline carries one object for "the data" from train.py to every run mode: the `Table` of
the tensor path (deeptune.data.sources, when `data.source` is a node), or, for a `data` node
without one (`data._target_` names the user's module), a `ComponentData`: the module's task,
classes, one sample's shape and its other contract attributes (the contract: docs in the README),
read from one instance built from the `data` node, prepared and set up for fit. Both answer
`.task` and `.classes`, which is all the validation needs; each fit builds its own fresh module
from the same node (deeptune.builders.datamodule).

The checks here turn a module that breaks the contract into one line naming `data._target_` and
the attribute, before any network is built.
"""

import inspect
from collections.abc import Mapping
from dataclasses import dataclass

from omegaconf import DictConfig

from deeptune.errors import ConfigError
from deeptune.tasks import TASKS

# train.yaml's shared `data.*` keys, TensorDataModule's arguments, with the values they have
# there: a component gets the ones its constructor takes; one it does not take is dropped when
# left at this value, and refused in one line when set (the user meant it to do something).
# None: offered, never refused: `seed` is ${seed}, and `shuffle` a wish that debug=overfit makes
# (Lightning's overfit_batches turns a loader's shuffling off itself).
SHARED_KEYS = {
    "batch_size": 64,
    "eval_batch_size": 1024,
    "val_fraction": 0.15,
    "test_fraction": 0.15,
    "split_seed": 0,
    "standardize": True,
    "shuffle": None,
    "seed": None,
}


def is_component(data_node) -> bool:
    """Whether `data` is a component data module: one fed no `data.source` node (the tensor
    path, TensorDataModule and its subclasses such as the lab's, is fed the source's Table)."""
    source = data_node.get("source")
    return not (isinstance(source, Mapping) and "_target_" in source)


@dataclass(frozen=True)
class ComponentData:
    """What deeptune knows of a component data module before training (one set-up instance)."""

    target: str
    task: str
    classes: tuple[str, ...]
    input_shape: tuple[int, ...]
    num_outputs: int
    vocab_size: int | None
    feature_names: tuple[str, ...] | None
    takes_fold: bool

    @property
    def name(self) -> str:
        return self.target.rpartition(".")[2]


def takes(target, name: str) -> bool:
    """Whether the class or function `target` takes a keyword argument `name`."""
    try:
        params = inspect.signature(target).parameters
    except (TypeError, ValueError):
        return False
    return name in params or any(p.kind is p.VAR_KEYWORD for p in params.values())


def constructor_node(node: DictConfig, target) -> DictConfig:
    """The `data` node less the shared keys the module does not take (see SHARED_KEYS)."""
    from deeptune.builders import without

    what = str(node.get("_target_")).rpartition(".")[2]
    dropped = []
    for key, default in SHARED_KEYS.items():
        if key not in node or takes(target, key):
            continue
        if default is not None and node.get(key) != default:
            try:
                names = ", ".join(inspect.signature(target).parameters)
            except (TypeError, ValueError):
                names = "other keys"
            raise ConfigError(
                f"data.{key}",
                node.get(key),
                f"{what} takes no {key} (a key of deeptune's TensorDataModule); it takes {names}",
            )
        dropped.append(key)
    return without(node, dropped)


def read(dm, target: str) -> ComponentData:
    """The contract's attributes of a data module set up for fit; a one-line ConfigError at
    `data._target_` naming the attribute that is missing or wrong."""
    what = target.rpartition(".")[2]

    def refuse(attribute: str, why: str):
        return ConfigError(
            "data._target_", target, f"{what}.{attribute} {why} (after setup('fit'))"
        )

    task = getattr(dm, "task", None)
    if task is None:
        raise refuse("task", f"is missing: a data module names its task, one of {', '.join(TASKS)}")
    if task not in TASKS:
        raise refuse("task", f"is {task!r}: must be one of {', '.join(TASKS)}")
    shape = getattr(dm, "input_shape", None)
    if shape is None:
        raise refuse("input_shape", "is missing: one sample's shape, e.g. (1, 8, 8)")
    if (
        isinstance(shape, (str, bytes))
        or not hasattr(shape, "__iter__")
        or not all(isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in shape)
        or not len(tuple(shape))
    ):
        raise refuse("input_shape", f"is {shape!r}: must be a tuple of positive ints")
    classes = getattr(dm, "classes", None)
    if task == "classification" and (classes is None or len(classes) < 2):
        raise refuse("classes", f"is {classes!r}: a classification names its classes (>= 2)")
    classes = tuple(str(c) for c in classes or ())
    default_outputs = len(classes) if task == "classification" else 1
    outputs = getattr(dm, "num_outputs", None)
    if outputs is None:
        outputs = default_outputs
    if not isinstance(outputs, int) or outputs != default_outputs:
        raise refuse("num_outputs", f"is {outputs!r}: {task} needs {default_outputs}")
    vocab = getattr(dm, "vocab_size", None)
    if vocab is not None and not (isinstance(vocab, int) and vocab > 0):
        raise refuse("vocab_size", f"is {vocab!r}: a positive int (the token id range)")
    features = getattr(dm, "feature_names", None)
    return ComponentData(
        target=target,
        task=task,
        classes=classes,
        input_shape=tuple(int(d) for d in shape),
        num_outputs=outputs,
        vocab_size=vocab,
        feature_names=tuple(str(f) for f in features) if features is not None else None,
        takes_fold=False,  # set by describe(): it knows the constructor
    )


def contract(dm):
    """What the network and the checkpoint are built from: a component module's contract
    attributes, read and checked, the optional ones filled in (a ComponentData); the tensor
    path's module, or a description already, as it is."""
    import lightning as L

    from deeptune.data.datamodule import TensorDataModule

    if isinstance(dm, L.LightningDataModule) and not isinstance(dm, TensorDataModule):
        return read(dm, f"{type(dm).__module__}.{type(dm).__qualname__}")
    return dm


def describe(cfg: DictConfig) -> ComponentData:
    """Build the module once from `data`, prepare it and set it up for fit, read the contract.

    Costs one setup before the run (each fit then sets up a fresh module of its own): the
    price of refusing a broken module or a misfitting config before any training."""
    from dataclasses import replace

    from deeptune import builders

    target = builders.locate(cfg.data._target_, "data")
    fold = (0, cfg.cv.folds) if cfg.cv.folds > 1 and takes(target, "fold") else None
    dm = builders.component_datamodule(cfg, fold=fold)
    return replace(read(dm, cfg.data._target_), takes_fold=takes(target, "fold"))


def check_folds(cfg: DictConfig, data: ComponentData) -> None:
    """K-fold cross-validation needs a module that splits itself by index: fold=(k, K)."""
    if cfg.cv.folds > 1 and not data.takes_fold:
        raise ConfigError(
            "cv.folds",
            cfg.cv.folds,
            f"{data.name} cannot be split by index (its constructor takes no fold=(k, K)); "
            "add a fold parameter that picks fold k of K as validation, or use cv.folds=1",
        )


# ---------------------------------------------------------------------------------------------
# Walking a split outside a trainer: the ensembles, the final-model report


def split_batches(dm, split: str):
    """The (x, y) batches of `split` ('val' or 'test') from the module's own loader; x a tensor
    or a dict of tensors."""
    return iter(getattr(dm, f"{split}_dataloader")())


def outputs_and_targets(forward, dm, split: str, device="cpu"):
    """(outputs, y) of `forward` over a whole split of a component module, in loader order."""
    import torch
    from lightning.fabric.utilities.apply_func import move_data_to_device

    outs, ys = [], []
    with torch.no_grad():
        for x, y in split_batches(dm, split):
            outs.append(forward(move_data_to_device(x, device)).cpu())
            ys.append(y.cpu())
    return torch.cat(outs), torch.cat(ys)
