"""The task registry: what each kind of data set is judged by.

A data set's `Table.task` names its task. Every module that needs to know a metric's name,
which direction is better, the headline figure or how to compute it asks here: the config
checks, the LightningModules, the ensembles, the printed summary and the sweep report. It
imports nothing heavy (torchmetrics classes are named by their paths), so config checks and
the offline report can use it before torch loads. A run may log more, the `metrics` group's
(deeptune.metrics): their directions come from torchmetrics, and a run's metrics.json lists
them under `directions`.
"""

import re
from dataclasses import dataclass, field

SPLITS = ("train", "val", "test")  # what a run reports metrics on
MONITORED_SPLITS = ("train", "val")  # what checkpoints, early stopping and sweeps may watch
# Figures of the whole run in metrics.json, beside the split metrics, that a multi-objective
# sweep may optimise too (accuracy vs network size, vs training time); each is better lower.
RUN_FIGURES = {"n_params": "min", "duration_s": "min"}


@dataclass(frozen=True)
class Metric:
    """One logged metric: `{split}/{name}`, computed by a torchmetrics class (path, kwargs)."""

    name: str
    higher_is_better: bool
    metric: str | None  # torchmetrics class path; None: the loss, averaged over batches
    kwargs: dict = field(default_factory=dict)

    @property
    def mode(self) -> str:
        return "max" if self.higher_is_better else "min"


@dataclass(frozen=True)
class Task:
    name: str
    loss: str  # the torch.nn.functional loss the module optimises
    metrics: tuple[Metric, ...]  # headline first; the loss is always logged too
    classes: bool  # targets are class indices (one output per class), else one number

    @property
    def names(self) -> tuple[str, ...]:
        """Every metric the task logs per split, the loss included."""
        return (*(m.name for m in self.metrics), "loss")

    @property
    def headline(self) -> str:
        return self.metrics[0].name

    def metric(self, name: str) -> Metric:
        if name == "loss":
            return Metric("loss", higher_is_better=False, metric=None)
        return next(m for m in self.metrics if m.name == name)


_MULTICLASS = "torchmetrics.classification.Multiclass"
TASKS = {
    "classification": Task(
        "classification",
        loss="cross_entropy",
        metrics=(
            Metric("acc", True, f"{_MULTICLASS}Accuracy", {"average": "micro"}),
            Metric("f1", True, f"{_MULTICLASS}F1Score", {"average": "macro"}),
        ),
        classes=True,
    ),
    "regression": Task(
        "regression",
        loss="mse_loss",
        metrics=(
            Metric("mse", False, "torchmetrics.MeanSquaredError"),
            Metric("r2", True, "torchmetrics.R2Score"),
        ),
        classes=False,
    ),
}


def task(name: str) -> Task:
    return TASKS[name]


def all_metric_names() -> list[str]:
    """Every metric name some task logs, in registry order (loss last)."""
    names = [m.name for t in TASKS.values() for m in t.metrics]
    return [*dict.fromkeys(names), "loss"]


def direction(name: str) -> str:
    """'max' or 'min' for a metric name, whichever task logs it ('min' for unknown names)."""
    for t in TASKS.values():
        for m in t.metrics:
            if m.name == name:
                return m.mode
    return "min"


def display_order(names) -> list[str]:
    """The registry's order (each task's headline first, the loss last), the others (the
    `metrics` group's) after, by name, the numbers in them as numbers (recall_2 < recall_10)."""
    order = {n: i for i, n in enumerate(all_metric_names())}
    return sorted(
        set(names),
        key=lambda n: (n == "loss", order.get(n, len(order)), _natural(n)),
    )


def _natural(name: str) -> list:
    return [(0, int(p), "") if p.isdigit() else (1, 0, p) for p in re.split(r"(\d+)", name)]


# ---------------------------------------------------------------------------------------------
# The objectives: `optimized_metric`, one metric or a list of them (a multi-objective sweep)


def objectives(optimized_metric) -> list[str]:
    """`optimized_metric` as a list: [val/acc], or [val/acc, n_params] for two objectives."""
    if isinstance(optimized_metric, str):
        return [optimized_metric]
    return [str(key) for key in optimized_metric]


def monitored(optimized_metric) -> str | None:
    """The metric checkpoints, early stopping and pruning watch: the first objective (None for
    an empty list, which the config checks refuse)."""
    return next(iter(objectives(optimized_metric)), None)


def objective_value(metrics: dict, key: str):
    """The value of one objective in a run's metrics.json (None when it has none)."""
    if key in RUN_FIGURES:
        return metrics.get(key)
    split, _, name = key.partition("/")
    return (metrics.get(split) or {}).get(name)


def objective_mode(key: str, directions: dict | None = None) -> str:
    """'max' or 'min': which way an objective is better. `directions`: the `metrics` group's
    ({name: mode}, as a run's metrics.json lists them), which no registry knows."""
    name = key.partition("/")[2]
    return RUN_FIGURES.get(key) or (directions or {}).get(name) or direction(name)
