"""The schema of configs/data/*.yaml and of the shared `data.*` keys in configs/train.yaml: the
data module's split, scaling and batching, and each source's own arguments."""

from typing import Annotated, ClassVar, Literal

from deeptune.errors import ConfigError
from deeptune.schema import (
    Float,
    Fraction,
    Int,
    Name,
    Node,
    NonNegFloat,
    Path,
    PosInt,
    Required,
    Seed,
    schema,
)

Samples = Int(ge=10)
# What a file's target column holds: class labels, or the numbers to predict.
Task = Literal["classification", "regression"]


@schema("deeptune.data.datamodule.TensorDataModule")
class DataNode(Node):
    # `source` is a node of its own (data.source); `fold` is set by cross-validation.
    source: Annotated[dict, Required("choose a data set with data=<name>, e.g. data=digits")]
    batch_size: PosInt = None
    eval_batch_size: PosInt = None
    val_fraction: Fraction = None
    test_fraction: Fraction = None
    split_seed: Seed = None
    standardize: bool = None
    shuffle: bool = None
    seed: Seed = None
    # Short to type, interpolated into data.source.seq_len by the sequence data sets: the data
    # module does not take it, so the builder leaves it out.
    seq_len: Int(ge=2, le=100_000) = None
    BUILDER_KEYS: ClassVar[tuple[str, ...]] = ("seq_len",)

    def check(self, key: str) -> None:
        val = self.val_fraction if self.val_fraction is not None else 0.15
        test = self.test_fraction if self.test_fraction is not None else 0.15
        if val + test >= 0.9:
            raise ConfigError(
                f"{key}.val_fraction",
                val,
                f"val_fraction + test_fraction must stay below 0.9 (test_fraction={test})",
            )


@schema("deeptune.data.sources.digits", "deeptune.data.sources.digits_images")
class DigitsNode(Node):
    pass


@schema("deeptune.data.sources.moons")
class MoonsNode(Node):
    n_samples: Samples = None
    noise: NonNegFloat = None
    seed: Seed = None


@schema("deeptune.data.sources.circles")
class CirclesNode(MoonsNode):
    factor: Float(gt=0, lt=1) = None


@schema("deeptune.data.sources.spirals")
class SpiralsNode(MoonsNode):
    n_classes: Int(ge=2, le=1000) = None
    turns: Float(gt=0, le=100) = None


@schema("deeptune.data.sources.blobs")
class BlobsNode(Node):
    n_samples: Samples = None
    n_features: Int(ge=1, le=100_000) = None
    centers: Int(ge=2, le=10_000) = None
    cluster_std: Float(gt=0) = None
    seed: Seed = None


@schema("deeptune.data.sources.classification")
class ClassificationNode(Node):
    n_samples: Samples = None
    n_features: Int(ge=1, le=100_000) = None
    n_informative: PosInt = None
    n_redundant: Int(ge=0) = None
    n_classes: Int(ge=2, le=10_000) = None
    class_sep: Float(gt=0) = None
    flip_y: Float(ge=0, le=1) = None
    seed: Seed = None


@schema("deeptune.data.sources.adding", "deeptune.data.sources.temporal_order")
class SequenceNode(Node):
    n_samples: Samples = None
    seq_len: Int(ge=2, le=100_000) = None
    seed: Seed = None


@schema("deeptune.data.sources.csv")
class CsvNode(Node):
    path: Path
    target: Name = None
    features: list[Name] | None = None
    task: Task = None


@schema("deeptune.data.sources.npz")
class NpzNode(Node):
    path: Path
    features_key: Name = None
    target_key: Name = None
    task: Task = None
