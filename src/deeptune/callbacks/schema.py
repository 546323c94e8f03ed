"""The schema of the `callbacks` config: Lightning's callbacks in configs/callbacks/*.yaml and
deeptune's own (the run modes' callbacks in configs/train.yaml)."""

from typing import Literal

from deeptune.schema import (
    Float,
    Int,
    MetricKey,
    Name,
    Node,
    NonNegFloat,
    NonNegInt,
    Path,
    PosFloat,
    PosInt,
    Text,
    schema,
)

Mode = Literal["min", "max"]  # checked against the monitor once the task is known


@schema(
    "lightning.pytorch.callbacks.ModelCheckpoint",
    "deeptune.callbacks.checkpoints.BestCheckpoint",
)
class ModelCheckpointNode(Node):
    dirpath: Path | None = None
    filename: Name | None = None
    monitor: MetricKey | None = None
    verbose: bool = None
    save_last: bool | Literal["link"] | None = None
    save_top_k: Int(ge=-1) = None
    save_on_exception: bool = None
    save_weights_only: bool = None
    mode: Mode = None
    auto_insert_metric_name: bool = None
    every_n_train_steps: NonNegInt | None = None
    train_time_interval: None = None  # a timedelta: not expressible in YAML
    every_n_epochs: NonNegInt | None = None
    save_on_train_epoch_end: bool | None = None
    enable_version_counter: bool = None


@schema("deeptune.callbacks.checkpoints.LastCheckpoint")
class LastCheckpointNode(ModelCheckpointNode):
    every_s: NonNegFloat = None


@schema("lightning.pytorch.callbacks.EarlyStopping")
class EarlyStoppingNode(Node):
    monitor: MetricKey
    min_delta: NonNegFloat = None
    patience: NonNegInt = None
    verbose: bool = None
    mode: Mode = None
    strict: bool = None
    check_finite: bool = None
    stopping_threshold: Float() | None = None
    divergence_threshold: Float() | None = None
    check_on_train_epoch_end: bool | None = None
    log_rank_zero_only: bool = None


@schema("lightning.pytorch.callbacks.LearningRateMonitor")
class LearningRateMonitorNode(Node):
    logging_interval: Literal["step", "epoch"] | None = None
    log_momentum: bool = None
    log_weight_decay: bool = None


@schema("lightning.pytorch.callbacks.RichProgressBar")
class RichProgressBarNode(Node):
    refresh_rate: NonNegInt = None
    leave: bool = None
    theme: dict | None = None
    console_kwargs: dict | None = None


@schema("lightning.pytorch.callbacks.TQDMProgressBar")
class TQDMProgressBarNode(Node):
    refresh_rate: NonNegInt = None
    process_position: NonNegInt = None
    leave: bool = None


@schema("lightning.pytorch.callbacks.RichModelSummary", "lightning.pytorch.callbacks.ModelSummary")
class ModelSummaryNode(Node):
    max_depth: Int(ge=-1) = None


@schema("deeptune.callbacks.nonfinite.StopOnNonFiniteLoss")
class StopOnNonFiniteLossNode(Node):
    every_n_batches: Int(ge=1, le=100_000) = None


@schema("deeptune.callbacks.stepwise.stepwise_unfreeze")
class StepwiseNode(Node):
    strategy: Literal["none", "lower_first", "top_first"] = None
    every: PosInt = None


@schema("deeptune.callbacks.finetune.freeze_layers")
class FreezeNode(Node):
    layers: list[NonNegInt] = None
    epochs: PosInt | None = None
    lr_scale: PosFloat = None


@schema("deeptune.callbacks.pruning.optuna_pruning")
class PruningNode(Node):
    storage: Text | None = None
    study_name: Text | None = None
    trial: NonNegInt | None = None
    monitor: MetricKey = None
