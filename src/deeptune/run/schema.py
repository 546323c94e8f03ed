"""The schema of the run: configs/train.yaml's own keys and the `trainer` group
(lightning.Trainer's arguments, every one, so `+trainer.<typo>` fails before torch loads)."""

from typing import Annotated, ClassVar, Literal

from pydantic import Field

from deeptune.diagnostics.schema import ReportSection
from deeptune.schema import (
    Allowed,
    Float,
    Int,
    Label,
    MetricKey,
    Name,
    Node,
    NonNegInt,
    Path,
    PosFloat,
    PosInt,
    Section,
    Seed,
    Text,
    schema,
)

ENSEMBLES = ("mean_prob", "majority_vote", "mean_logit")
# Lightning's precision names and their aliases (lightning.fabric.connector._PRECISION_INPUT,
# held to it by tests/test_gpu_knobs.py), and deeptune's `auto` (deeptune.builders.auto_precision)
PRECISION_NAMES = (
    "auto", "32-true", "16-mixed", "bf16-mixed", "16-true", "bf16-true", "64-true",
    "transformer-engine", "transformer-engine-float16",
)  # fmt: skip
PRECISIONS = (*PRECISION_NAMES, 64, 32, 16, "64", "32", "16", "bf16")
MIXED_PRECISIONS = ("16-mixed", "bf16-mixed", 16, "16", "bf16")  # autocast (Lightning's AMP)
Precision = Annotated[
    Literal[PRECISIONS],
    Allowed(f"one of {', '.join(PRECISION_NAMES)} (or Lightning's aliases 64, 32, 16, bf16)"),
]
ACCELERATORS = ("auto", "cpu", "gpu", "cuda", "mps", "tpu", "xla", "hpu")
Batches = NonNegInt | Float(ge=0, le=1)  # a count, or a fraction of the epoch
Devices = Annotated[
    str,
    Field(pattern=r"^(auto|-1|\d+(,\s*\d+)*,?)$"),
    Allowed("auto, -1, or device ids such as 0,1"),
]
# optimized_metric as a list: the objectives of a multi-objective sweep (deeptune.config checks
# each); the first is the watched metric, and optimized_mode is its mode.
Objectives = Annotated[
    list[str],
    Allowed("a list of objectives, e.g. [val/acc, n_params] (the first one is watched)"),
]
MaxTime = Annotated[
    str, Field(pattern=r"^\d+(:\d+){0,3}$"), Allowed("DD:HH:MM:SS, e.g. 00:12:00:00")
]


class CrossValidation(Section):
    folds: Int(ge=1, le=1000)
    fold: NonNegInt | None


class Stepwise(Section):
    strategy: Literal["none", "lower_first", "top_first"]
    every: PosInt


class Finetune(Section):
    from_: Path | None = Field(alias="from")  # `from` is a Python keyword
    freeze: list[NonNegInt]
    freeze_epochs: PosInt | None
    lr_scale: PosFloat


class Optuna(Section):
    storage: Text | None
    study_name: Text | None
    trial: NonNegInt | None


class Paths(Section):
    root_dir: Path
    output_dir: Path


@schema("lightning.Trainer", "lightning.pytorch.Trainer")
class TrainerNode(Node):
    # torch.set_float32_matmul_precision, set by deeptune.builders.trainer before the fit
    float32_matmul_precision: Literal["highest", "high", "medium"] | None = None
    BUILDER_KEYS: ClassVar[tuple[str, ...]] = ("float32_matmul_precision",)
    accelerator: Literal[ACCELERATORS] = None
    strategy: Name | dict = None
    devices: PosInt | Literal[-1] | Devices | list[NonNegInt] = None
    num_nodes: Int(ge=1, le=100_000) = None
    precision: Precision | None = None
    fast_dev_run: bool | NonNegInt = None
    max_epochs: Int(ge=1, le=10**9) = None
    min_epochs: NonNegInt | None = None
    max_steps: Int(ge=-1) = None
    min_steps: NonNegInt | None = None
    max_time: MaxTime | dict[str, NonNegInt] | None = None  # or {days: 1, hours: 2}
    limit_train_batches: Batches | None = None
    limit_val_batches: Batches | None = None
    limit_test_batches: Batches | None = None
    limit_predict_batches: Batches | None = None
    overfit_batches: Batches = None
    val_check_interval: PosInt | Float(gt=0, le=1) | None = None
    check_val_every_n_epoch: PosInt | None = None
    num_sanity_val_steps: Int(ge=-1) | None = None
    log_every_n_steps: PosInt | None = None
    enable_checkpointing: bool | None = None
    enable_progress_bar: bool | None = None
    enable_model_summary: bool | None = None
    accumulate_grad_batches: PosInt = None
    gradient_clip_val: Float(ge=0) | None = None
    gradient_clip_algorithm: Literal["norm", "value"] | None = None
    deterministic: bool | Literal["warn"] | None = None
    benchmark: bool | None = None
    inference_mode: bool = None
    use_distributed_sampler: bool = None
    profiler: Literal["simple", "advanced", "pytorch", "xla"] | dict | None = None
    detect_anomaly: bool = None
    barebones: bool = None
    plugins: list | dict | Name | None = None
    sync_batchnorm: bool = None
    reload_dataloaders_every_n_epochs: NonNegInt = None
    default_root_dir: Path | None = None
    enable_autolog_hparams: bool = None
    model_registry: Text | None = None
    # `logger` and `callbacks` come from the logger and callbacks groups.


@schema("lightning.pytorch.profilers.SimpleProfiler")
class SimpleProfilerNode(Node):
    dirpath: Path | None = None
    filename: Name | None = None
    extended: bool = None


@schema("lightning.pytorch.profilers.AdvancedProfiler")
class AdvancedProfilerNode(Node):
    dirpath: Path | None = None
    filename: Name | None = None
    line_count_restriction: Float(gt=0, le=1) = None
    dump_stats: bool = None


class TrainConfig(Section):
    """configs/train.yaml: the run's own keys; the groups' nodes are checked by their targets'
    schemas (deeptune.config)."""

    task_name: Name
    tags: list[Label]
    seed: Seed
    optimized_metric: MetricKey | Objectives
    optimized_mode: Literal["min", "max"]
    test: bool
    ckpt_path: Path | None
    trust_config: bool
    resume: Literal["auto", "never"]
    keep_last: bool = False  # a default: configs saved before the key existed lack it
    threads: Int(ge=1, le=4096) | Literal["auto"] | None
    cv: CrossValidation
    restarts: Int(ge=1, le=10_000)
    restarts_backend: Literal["sequential", "batched"] = "sequential"  # older configs lack it
    loop: Literal["auto", "lean", "lightning"] = "auto"  # deeptune.run.lean; older configs lack it
    ensemble: Literal[("none", *ENSEMBLES)]
    stepwise: Stepwise
    finetune: Finetune
    report: ReportSection
    optuna: Optuna
    paths: Paths
    model: dict
    data: dict
    optimizer: dict
    scheduler: dict | None = None
    trainer: dict
    callbacks: dict[str, dict | None] | None = None
    logger: dict[str, dict | None] | None = None
    metrics: dict[str, dict | None] | None = None  # the `metrics` group: torchmetrics nodes


class EvalConfig(Section):
    """configs/eval.yaml."""

    task_name: Name
    ckpt_path: Path | None
    trust_config: bool
    trainer: dict
    paths: Paths
    data: dict | None = None  # data=csv data.source.path=...: test on a new labelled table


class PredictConfig(Section):
    """configs/predict.yaml."""

    task_name: Name
    ckpt_path: Path | None
    input: Path | None
    output: Path
    id_column: Text | None
    input_key: Name
    chunk_size: Int(ge=1, le=10**8)
    trust_config: bool
    paths: Paths
