"""Config checks that run before torch is imported, so bad input fails in a second, on one line.

Hydra composes the config and checks its structure (unknown keys, missing groups). The rules
below add what YAML cannot say: types, ranges and allowed names, keyed by config path. A rule
for a key that a config does not have is skipped, so optional groups need no special case.
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from omegaconf import DictConfig, ListConfig, OmegaConf

from deeptune.errors import ConfigError
from deeptune.models.choices import ACTIVATIONS, INITS, NORMS

CONFIG_DIR = Path(__file__).resolve().parents[2] / "configs"
ENSEMBLES = ("mean_prob", "majority_vote", "mean_logit")
METRICS = [
    f"{stage}/{name}" for stage in ("val", "train") for name in ("acc", "f1", "loss", "mse", "r2")
]


@dataclass(frozen=True)
class Rule:
    """A value's type and range; `describe()` is the 'what is allowed' part of the error."""

    kind: type | tuple[type, ...] = object
    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None
    choices: Sequence | None = None
    optional: bool = False
    each: bool = False  # an int/float or a list of them, each checked
    also: tuple = ()  # literal values allowed besides the rule, e.g. "auto"

    def describe(self) -> str:
        if self.choices is not None:
            text = "one of " + ", ".join(map(str, self.choices))
        else:
            names = {int: "an integer", float: "a number", bool: "true or false", str: "a string"}
            kinds = self.kind if isinstance(self.kind, tuple) else (self.kind,)
            text = " or ".join(names.get(k, k.__name__) for k in kinds)
            bounds = [
                f"{op} {v:g}"
                for op, v in ((">=", self.ge), (">", self.gt), ("<=", self.le), ("<", self.lt))
                if v is not None
            ]
            text += " " + " and ".join(bounds) if bounds else ""
        if self.each:
            text += " (or a list of them)"
        text += "".join(f", or {v}" for v in self.also)
        return text + (", or null" if self.optional else "")

    def ok(self, value) -> bool:
        if value is None:
            return self.optional
        if value in self.also and isinstance(value, str):
            return True
        if self.each and isinstance(value, (list, tuple)):
            return len(value) > 0 and all(self._ok_one(v) for v in value)
        return self._ok_one(value)

    def _ok_one(self, value) -> bool:
        if self.choices is not None:
            return value in self.choices
        kinds = self.kind if isinstance(self.kind, tuple) else (self.kind,)
        if isinstance(value, bool) and bool not in kinds:  # True is an int to Python, not to us
            return False
        if float in kinds and isinstance(value, int):
            pass
        elif not isinstance(value, kinds):
            return False
        return all(
            check
            for check in (
                self.ge is None or value >= self.ge,
                self.gt is None or value > self.gt,
                self.le is None or value <= self.le,
                self.lt is None or value < self.lt,
            )
        )


INT_POS, FLOAT_POS, FLOAT_NONNEG = Rule(int, ge=1), Rule(float, gt=0), Rule(float, ge=0)
FRACTION = Rule(float, gt=0, lt=1)

RULES: dict[str, Rule] = {
    "seed": Rule(int, ge=0),
    "optimized_metric": Rule(choices=METRICS),
    "optimized_mode": Rule(choices=("min", "max")),
    "threads": Rule(int, ge=1, also=("auto",), optional=True),
    "resume": Rule(choices=("auto", "never")),
    "cv.folds": Rule(int, ge=1),
    "cv.fold": Rule(int, ge=0, optional=True),
    "restarts": INT_POS,
    "ensemble": Rule(choices=("none", *ENSEMBLES)),
    "stepwise.strategy": Rule(choices=("none", "lower_first", "top_first")),
    "stepwise.every": INT_POS,
    "finetune.from": Rule(str, optional=True),
    "finetune.freeze_epochs": Rule(int, ge=1, optional=True),
    "finetune.lr_scale": Rule(float, gt=0),
    "model.depth": INT_POS,
    "model.width": Rule(int, ge=1, each=True),
    "model.activation": Rule(choices=list(ACTIVATIONS)),
    "model.norm": Rule(choices=list(NORMS)),
    "model.init": Rule(choices=INITS),
    "model.dropout": Rule(float, ge=0, lt=1),
    "model.residual": Rule(bool),
    "model.maxout_pieces": Rule(int, ge=2),
    "data.batch_size": INT_POS,
    "data.eval_batch_size": INT_POS,
    "data.val_fraction": FRACTION,
    "data.test_fraction": FRACTION,
    "data.split_seed": Rule(int, ge=0),
    "data.standardize": Rule(bool),
    "data.shuffle": Rule(bool),
    "data.source.n_samples": Rule(int, ge=10),
    "data.source.noise": FLOAT_NONNEG,
    "data.source.path": Rule(str),
    # Recurrent models (model=rnn) and sequence data (data=adding, data=temporal_order).
    "model.cell": Rule(choices=("rnn", "lstm", "gru")),  # deeptune.models.rnn.CELLS
    "model.hidden": INT_POS,
    "model.layers": INT_POS,
    "model.bidirectional": Rule(bool),
    "data.seq_len": Rule(int, ge=2),
    "data.source.seq_len": Rule(int, ge=2),
    "optimizer.lr": FLOAT_POS,
    "optimizer.weight_decay": FLOAT_NONNEG,
    "optimizer.momentum": Rule(float, ge=0, lt=1),
    "optimizer.alpha": Rule(float, ge=0, lt=1),
    "optimizer.eps": FLOAT_POS,
    "optimizer.betas": Rule(float, ge=0, lt=1, each=True),
    "optimizer.max_iter": INT_POS,
    "scheduler.gamma": Rule(float, gt=0, le=1),
    "scheduler.gamma_after": Rule(float, gt=0, le=1),
    "scheduler.step_size": INT_POS,
    "scheduler.switch_epoch": Rule(int, ge=0),
    "scheduler.warmup_epochs": INT_POS,
    "scheduler.then": Rule(choices=("cosine", "constant")),
    "scheduler.factor": Rule(float, gt=0, lt=1),
    "scheduler.patience": Rule(int, ge=0),
    "trainer.max_epochs": INT_POS,
    "trainer.gradient_clip_val": Rule(float, ge=0, optional=True),
    "trainer.gradient_clip_algorithm": Rule(choices=("norm", "value")),
    "trainer.deterministic": Rule(choices=(True, False, "warn")),
    "trainer.devices": Rule((int, str, list)),
    "callbacks.early_stopping.patience": Rule(int, ge=0),
    "callbacks.early_stopping.min_delta": FLOAT_NONNEG,
    "callbacks.grad_health.enabled": Rule(bool),
    "callbacks.grad_health.every_n_steps": INT_POS,
    "callbacks.grad_health.vanishing_ratio": FRACTION,
    "callbacks.grad_health.exploding_norm": FLOAT_POS,
    "callbacks.grad_health.plot": Rule(choices=(True, False, "auto")),
    "callbacks.overfit_check.threshold": FLOAT_POS,
    "callbacks.lr_find.min_lr": FLOAT_POS,
    "callbacks.lr_find.max_lr": FLOAT_POS,
    "callbacks.lr_find.num_training_steps": Rule(int, ge=5),
    "callbacks.lr_find.mode": Rule(choices=("exponential", "linear")),
    "report.confusion": Rule(bool),
    "report.tsne": Rule(bool),
    "report.tsne_layer": Rule(str, optional=True),
    "report.tsne_samples": Rule(int, ge=10),
    "report.tsne_perplexity": FLOAT_POS,
    "trainer.overfit_batches": Rule((int, float), ge=0),
}

CROSS_CHECKS: list[Callable[[DictConfig], None]] = []


def _cross_check(fn):
    CROSS_CHECKS.append(fn)
    return fn


@_cross_check
def _fractions_leave_training_data(cfg):
    val, test = _get(cfg, "data.val_fraction"), _get(cfg, "data.test_fraction")
    if val is not _ABSENT and test is not _ABSENT and val + test >= 0.9:
        raise ConfigError(
            "data.val_fraction",
            val,
            f"val_fraction + test_fraction must stay below 0.9 (test_fraction={test})",
        )


@_cross_check
def _resume_checkpoint_exists(cfg):
    path = _get(cfg, "ckpt_path")
    if isinstance(path, str) and not Path(path).expanduser().is_file():
        raise ConfigError(
            "ckpt_path", path, "no such file; resume from a run's checkpoints/last.ckpt"
        )


@_cross_check
def _widths_match_depth(cfg):
    width, depth = _get(cfg, "model.width"), _get(cfg, "model.depth")
    if isinstance(width, list) and len(width) != depth:
        raise ConfigError(
            "model.width",
            list(width),
            f"a list of widths needs one entry per hidden layer (model.depth={depth})",
        )


@_cross_check
def _restarts_combine(cfg):
    restarts, method = _get(cfg, "restarts"), _get(cfg, "ensemble")
    if restarts is not _ABSENT and restarts > 1 and _get(cfg, "cv.folds") not in (1, _ABSENT):
        raise ConfigError("restarts", restarts, "restarts > 1 cannot be combined with cv.folds > 1")
    if method in ENSEMBLES and restarts in (1, _ABSENT):
        raise ConfigError("ensemble", method, "combines restarts: set restarts >= 2 as well")
    if method in ENSEMBLES and _get(cfg, "callbacks.model_checkpoint") in (None, _ABSENT):
        raise ConfigError(
            "ensemble",
            method,
            "needs each restart's best checkpoint: keep callbacks.model_checkpoint",
        )


@_cross_check
def _finetune_checkpoint_and_layers(cfg):
    path = _get(cfg, "finetune.from")
    if isinstance(path, str) and not Path(path).expanduser().is_file():
        raise ConfigError("finetune.from", path, "no such file; pass a run's checkpoints/best.ckpt")
    freeze, depth = _get(cfg, "finetune.freeze"), _get(cfg, "model.depth")
    if freeze in (_ABSENT, None):
        return
    limit = depth if isinstance(depth, int) else None  # no model.depth: only the sign is known
    ok = isinstance(freeze, list) and all(
        isinstance(i, int) and not isinstance(i, bool) and 0 <= i < (limit or i + 1) for i in freeze
    )
    if not ok:
        where = f"in 0..{depth - 1} (model.depth={depth})" if limit else ">= 0"
        raise ConfigError(
            "finetune.freeze", freeze, f"must be a list of hidden layer indices {where}"
        )
    if freeze and _get(cfg, "stepwise.strategy") not in ("none", _ABSENT):
        raise ConfigError(
            "finetune.freeze", freeze, "cannot be combined with stepwise.strategy; use one"
        )


def check_task(cfg: DictConfig, task: str) -> None:
    """The objective and the ensemble fit the data's task, known once the data set is loaded:
    a classification is judged by acc, f1 or loss, a regression by loss, mse or r2."""
    names = {"classification": ("acc", "f1", "loss"), "regression": ("loss", "mse", "r2")}[task]
    data = str(_get(cfg, "data.source._target_")).rpartition(".")[2]
    metric, mode = _get(cfg, "optimized_metric"), _get(cfg, "optimized_mode")
    if isinstance(metric, str):
        split, _, name = metric.partition("/")
        if name not in names:
            allowed = ", ".join(f"{split}/{n}" for n in names)
            raise ConfigError(
                "optimized_metric", metric, f"{data} is a {task} data set: use one of {allowed}"
            )
        best = "max" if name in ("acc", "f1", "r2") else "min"
        if mode in ("min", "max") and mode != best:
            higher = "higher" if best == "max" else "lower"
            raise ConfigError(
                "optimized_mode",
                mode,
                f"{metric} is better when {higher}: set optimized_mode={best}",
            )
    method = _get(cfg, "ensemble")
    if task == "regression" and method in ("mean_prob", "majority_vote"):
        raise ConfigError(
            "ensemble",
            method,
            f"{data} is a regression data set: use mean_logit (the mean of the restarts' "
            "predictions) or none",
        )


@_cross_check
def _layer_schedules_need_hidden_layers(cfg):
    """Step-wise training and frozen layers work on the MLP's hidden blocks."""
    if _get(cfg, "model.depth") is not _ABSENT:
        return
    for key in ("stepwise.strategy", "finetune.freeze"):
        value = _get(cfg, key)
        if value not in (_ABSENT, None, "none", []):
            target = _get(cfg, "model._target_")
            raise ConfigError(key, value, f"works on model=mlp's hidden layers, not {target}")


@_cross_check
def _lr_find_range(cfg):
    low, high = _get(cfg, "callbacks.lr_find.min_lr"), _get(cfg, "callbacks.lr_find.max_lr")
    if isinstance(low, (int, float)) and isinstance(high, (int, float)) and low >= high:
        raise ConfigError(
            "callbacks.lr_find.min_lr", low, f"must be below callbacks.lr_find.max_lr={high}"
        )


def _get(cfg: DictConfig, path: str):
    """The value at `path`, or a sentinel when any part of it is absent."""
    node = cfg
    for part in path.split("."):
        if not isinstance(node, DictConfig) or part not in node:
            return _ABSENT
        node = node[part]
    return OmegaConf.to_container(node) if isinstance(node, (DictConfig, ListConfig)) else node


_ABSENT = object()


def validate(cfg: DictConfig) -> None:
    """Raise ConfigError for the first value that breaks a rule."""
    if missing := sorted(OmegaConf.missing_keys(cfg)):
        raise ConfigError(
            missing[0], "???", f"required: set it on the command line, e.g. {missing[0]}=<value>"
        )
    for path, rule in RULES.items():
        value = _get(cfg, path)
        if value is not _ABSENT and not rule.ok(value):
            raise ConfigError(path, value, f"must be {rule.describe()}")
    for check in CROSS_CHECKS:
        check(cfg)


def group_choices(group: str) -> list[str]:
    """The selectable options of a config group: its yaml files."""
    return sorted(p.stem for p in (CONFIG_DIR / group).glob("*.yaml"))


def check_group_overrides(overrides: Sequence[str]) -> None:
    """Name the bad choice and the allowed ones for `group=choice` overrides, before Hydra.

    Hydra's own message for a missing choice spans a dozen lines; this says it in one.
    """
    from hydra.core.override_parser.overrides_parser import OverridesParser

    try:
        parsed = OverridesParser.create().parse_overrides(list(overrides))
    except Exception:  # malformed overrides: Hydra's own message is the right one
        return
    for override in parsed:
        group = override.key_or_group
        if (
            override.is_delete()
            or group.startswith("hydra")
            or override.package
            or not (CONFIG_DIR / group).is_dir()
        ):
            continue
        values = (
            list(override.sweep_string_iterator())
            if override.is_sweep_override()
            else [override.value()]
        )
        allowed = group_choices(group)
        for value in values:
            if value is not None and str(value) not in allowed and str(value) != "null":
                raise ConfigError(group, str(value), "choose one of " + ", ".join(allowed))
