"""The metrics a run logs: its task's own (deeptune.tasks) and the `metrics` group's nodes.

Each `metrics.<name>` node is a torchmetrics Metric, logged as `{split}/<name>` beside acc and
f1 (or mse and r2) and the loss. The data set fills in what a node cannot know: `num_classes`,
and `task: multiclass` for torchmetrics' task wrappers (torchmetrics.AUROC), whenever the class
takes them. Which way is better is the metric's own `higher_is_better`. A metric that returns
one value per class (average=None) is logged per class, `{split}/<name>_<class>`. Top-k
accuracy with k at least the number of classes is always 1: such a node is left out.

`check` builds every node once on stand-in predictions, before training: a bad target, a metric
of the other task or arguments torchmetrics refuses are one line naming `metrics.<name>`.
"""

import inspect
import logging
import re
import warnings
from dataclasses import dataclass

import torch
from omegaconf import DictConfig, OmegaConf
from torchmetrics import Metric, MetricCollection

from deeptune import tasks
from deeptune.errors import ConfigError

log = logging.getLogger(__name__)
_warned: set[tuple[str, str]] = set()
_TASK_MODULES = {  # the task each of torchmetrics' sub-packages scores
    "torchmetrics.classification.": "classification",
    "torchmetrics.regression.": "regression",
}


@dataclass(frozen=True)
class Configured:
    """One configured metric, as the data set makes it: how it is logged and which way is best."""

    name: str
    mode: str | None  # 'max' or 'min'; None: its class does not say
    per_class: tuple[str, ...] = ()  # one value per class: logged as <name>_<class>

    @property
    def logged(self) -> tuple[str, ...]:
        return tuple(f"{self.name}_{c}" for c in self.per_class) or (self.name,)


def nodes(configured) -> dict[str, dict]:
    """The `metrics` group as plain {name: node}; `metrics.<name>=null` switches one off."""
    if configured is None:
        return {}
    if isinstance(configured, DictConfig):
        configured = OmegaConf.to_container(configured, resolve=True)
    return {str(name): node for name, node in configured.items() if node is not None}


def task_metrics(task: str, outputs: int, configured=None) -> MetricCollection:
    """The task's metrics and the configured ones as torchmetrics objects, named as logged
    (without the split); a classification's take the number of classes."""
    spec = tasks.task(task)
    if not spec.classes and outputs != 1:
        raise ValueError(f"a {task} predicts one number per sample, not {outputs}")
    extra = {"num_classes": outputs} if spec.classes else {}
    built = {m.name: _locate(m.metric, m.name)(**extra, **m.kwargs) for m in spec.metrics}
    for name, node in active(nodes(configured), task, outputs).items():
        built[name] = build(name, node, task, outputs)
    return MetricCollection(built)


def active(configured: dict[str, dict], task: str, outputs: int) -> dict[str, dict]:
    """The nodes that mean something on this data set: top-k accuracy needs more than k classes."""
    return {
        name: node for name, node in configured.items() if _left_out(node, task, outputs) is None
    }


def _left_out(node: dict, task: str, outputs: int) -> str | None:
    top_k = node.get("top_k")
    if tasks.task(task).classes and isinstance(top_k, int) and top_k >= outputs:
        return f"top_k={top_k} needs more than {top_k} classes (with {outputs} it is always 1)"
    return None


def build(name: str, node: dict, task: str, outputs: int) -> Metric:
    """One node's torchmetrics object, the data set's arguments filled in."""
    from deeptune.builders import build as build_node

    key = f"metrics.{name}"
    if not isinstance(node, dict) or "_target_" not in node:
        raise ConfigError(key, node, "a metric is a node with a _target_ (a torchmetrics class)")
    cls = _locate(node["_target_"], key)
    if not (inspect.isclass(cls) and issubclass(cls, Metric)):
        raise ConfigError(
            f"{key}._target_",
            node["_target_"],
            "must be a torchmetrics Metric class, e.g. torchmetrics.classification.MulticlassAUROC",
        )
    scores = next((t for m, t in _TASK_MODULES.items() if cls.__module__.startswith(m)), task)
    if scores != task:
        raise ConfigError(
            f"{key}._target_",
            node["_target_"],
            f"a {scores} metric cannot score a {task} data set: use metrics={task}, or {key}=null",
        )
    params = _parameters(cls)
    filled = {"num_classes": outputs, "task": "multiclass"} if tasks.task(task).classes else {}
    filled = {k: v for k, v in filled.items() if k in params and k not in node}
    metric = build_node(OmegaConf.create(node), key, **filled)
    if not isinstance(metric, Metric):
        raise ConfigError(f"{key}._target_", node["_target_"], "built no torchmetrics Metric")
    return metric


def check(configured, table, data: str) -> dict[str, Configured]:
    """{name: Configured} of the nodes this data set logs, each built and computed once on
    stand-in predictions; a ConfigError naming metrics.<name> for one that cannot work."""
    task, outputs = table.task, 1 if table.task == "regression" else len(table.classes)
    found = {}
    for name, node in nodes(configured).items():
        if (why := _left_out(node, task, outputs)) is not None:
            if (name, data) not in _warned:  # once, not once per restart an ensemble rebuilds
                _warned.add((name, data))
                log.warning("metrics.%s is not logged on %s: %s", name, data, why)
            continue
        metric = build(name, node, task, outputs)
        value = _probe(name, node, metric, task, outputs)
        per_class = ()
        if value.ndim == 1:
            per_class = class_suffixes(table.classes, outputs)
        mode = {True: "max", False: "min"}.get(getattr(metric, "higher_is_better", None))
        found[name] = Configured(name, mode, per_class)
    return found


def _probe(name: str, node: dict, metric: Metric, task: str, outputs: int) -> torch.Tensor:
    """The metric's value on random predictions: it must be a number, or one per class."""
    generator = torch.Generator().manual_seed(0)
    if tasks.task(task).classes:  # logits, every class present
        n = 4 * outputs
        preds, target = torch.randn(n, outputs, generator=generator), torch.arange(n) % outputs
    else:  # numbers away from 0, which a percentage error divides by
        preds, target = 1 + torch.rand(2, 16, generator=generator)
    key = f"metrics.{name}"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. "no positive samples" on stand-in data
            value = metric(preds, target)
    except Exception as err:
        message = " ".join(str(err).split())[:200] or type(err).__name__
        raise ConfigError(key, node["_target_"], f"{type(err).__name__}: {message}") from None
    if isinstance(value, torch.Tensor) and (
        value.ndim == 0 or (value.ndim == 1 and len(value) == outputs > 1)
    ):
        return value
    shape = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
    raise ConfigError(
        key, node["_target_"], f"returns {shape}: a metric must return a number, or one per class"
    )


def class_suffixes(classes, outputs: int) -> tuple[str, ...]:
    """What a per-class value is named after: the class name (letters, digits and _ kept), or
    its index when the data set has no names or two names would read the same."""
    names = [re.sub(r"\W", "_", str(c)) for c in classes or ()]
    if len(names) != outputs or len(set(names)) < outputs:
        names = [str(i) for i in range(outputs)]
    return tuple(names)


def flatten(values: dict, classes, outputs: int) -> dict:
    """{'val/recall': tensor([.9, .8])} -> {'val/recall_0': .9, 'val/recall_1': .8}; a number
    stays as it is."""
    out = {}
    for key, value in values.items():
        if isinstance(value, torch.Tensor) and value.ndim == 1:
            names = [f"{key}_{c}" for c in class_suffixes(classes, outputs)]
            out.update(zip(names, value, strict=True))
        else:
            out[key] = value
    return out


def class_mode(node: dict) -> str | None:
    """'max' or 'min' for a node without a data set (a sweep's objectives, decided before any
    trial): its class's higher_is_better, a task wrapper's as a multiclass metric."""
    cls = _locate(node["_target_"], "metrics")
    better = getattr(cls, "higher_is_better", None)
    if better is None and "task" in _parameters(cls):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            better = cls(task="multiclass", num_classes=2).higher_is_better
    return {True: "max", False: "min"}.get(better)


def _parameters(cls) -> set[str]:
    try:
        return set(inspect.signature(cls).parameters)
    except (TypeError, ValueError):
        return set()


def _locate(path: str, key: str):
    from deeptune.builders import locate

    return locate(path, key)
