"""The schema of configs/logger/*.yaml: where metrics go."""

from typing import Annotated, Literal

from pydantic import Field

from deeptune import extras
from deeptune.schema import Allowed, Label, Name, Node, Path, PosInt, Text, schema

Version = Name | Annotated[int, Field(ge=0)] | Literal[""] | None
# W&B refuses run ids and project names with these characters.
WandbId = Annotated[
    str,
    Field(pattern=r"^[^/\\#?%:\s]{1,128}$"),
    Allowed("an id (up to 128 characters, none of / \\ # ? % : or spaces)"),
]


@schema("deeptune.loggers.csv.CSVLogger")
class CSVLoggerNode(Node):
    save_dir: Path = None
    name: Name | None = None
    version: Version = None
    prefix: Text = None
    flush_logs_every_n_steps: PosInt = None


@schema("lightning.pytorch.loggers.TensorBoardLogger")
class TensorBoardLoggerNode(Node):  # and SummaryWriter's **kwargs
    model_config = {"extra": "allow"}
    save_dir: Path = None
    name: Name | None = None
    version: Version = None
    prefix: Text = None
    log_graph: bool = None
    default_hp_metric: bool = None
    sub_dir: Path | None = None


@schema("deeptune.loggers.wandb.WandbLogger", "lightning.pytorch.loggers.WandbLogger")
class WandbLoggerNode(Node):  # and wandb.init's **kwargs
    model_config = {"extra": "allow"}
    name: Label | None = None
    save_dir: Path = None
    version: WandbId | None = None
    offline: bool = None
    dir: Path | None = None
    id: WandbId | None = None
    anonymous: bool | None = None
    project: WandbId | None = None
    log_model: bool | Literal["all"] = None
    prefix: Text = None
    checkpoint_name: Text | None = None
    add_file_policy: Literal["mutable", "immutable"] = None
    # wandb.init's own, set in configs/logger/wandb.yaml
    entity: WandbId | None = None
    group: Label | None = None
    tags: list[Label] = None
    job_type: Label | None = None
    resume: Literal["allow", "must", "never", "auto"] | bool | None = None
    # deeptune's, read by deeptune.builders.loggers: when_available starts W&B only where it can
    # upload or is asked for (deeptune.loggers.wandb.asked_for)
    start: Literal["always", "when_available"] = None


@schema("lightning.pytorch.loggers.MLFlowLogger")
class MLFlowLoggerNode(Node):
    experiment_name: Label = None
    run_name: Label | None = None
    tracking_uri: Text | None = None
    tags: dict[str, str | int | float | bool] | None = None
    save_dir: Path | None = None
    log_model: bool | Literal["all"] = None
    prefix: Text = None
    artifact_location: Text | None = None
    run_id: Annotated[str, Field(pattern=r"^[0-9a-f]{32}$")] | None = None
    synchronous: bool | None = None

    def check(self, key: str) -> None:
        # Lightning would raise a ModuleNotFoundError traceback only when the logger is built,
        # after torch has loaded; mlflow is an optional extra.
        extras.require("mlflow", key, self.target_, "the MLflow logger")
