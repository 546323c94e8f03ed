"""The schema of configs/data/*.yaml and of the shared `data.*` keys in configs/train.yaml: the
data module's split, scaling and batching, and each source's own arguments."""

from typing import Annotated, ClassVar, Literal

from pydantic import Field

from deeptune.errors import ConfigError
from deeptune.schema import (
    Float,
    Fraction,
    Int,
    Label,
    Name,
    Node,
    NonNegFloat,
    Path,
    PosInt,
    Required,
    Section,
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
        check_fractions(self, key)


def check_fractions(node: Node, key: str) -> None:
    val = node.val_fraction if node.val_fraction is not None else 0.15
    test = node.test_fraction if node.test_fraction is not None else 0.15
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


# ---------------------------------------------------------------------------------------------
# The DataLoader path (deeptune.data.loaders): data modules that read files themselves.


class LoaderNode(Node):
    """train.yaml's shared `data.*` keys (no `source`) and the DataLoader's own."""

    batch_size: PosInt = None
    eval_batch_size: PosInt = None
    val_fraction: Fraction = None
    test_fraction: Fraction = None
    split_seed: Seed = None
    shuffle: bool = None
    seed: Seed = None
    num_workers: Int(ge=0, le=1024) = None  # processes reading batches; 0 = the main process
    pin_memory: bool = None  # page-locked batches: faster copies to a GPU
    persistent_workers: bool = None  # keep the workers between epochs (num_workers > 0)

    def check(self, key: str) -> None:
        check_fractions(self, key)


class Augment(Section):
    crop: Int(ge=0, le=4096) = None  # pad by this many pixels, crop back at a random offset
    flip: bool = None  # mirror left-right with probability 1/2


ImageSize = PosInt | Annotated[list[PosInt], Field(min_length=2, max_length=2)]


@schema("deeptune.data.folders.ImageFolderDataModule")
class ImagesNode(LoaderNode):
    path: Annotated[Path, Required("data.path=<folder of class folders>")]
    image_size: ImageSize = None
    channels: Literal[1, 3] = None
    standardize: bool = None
    augment: Augment = None
    in_memory_mb: NonNegFloat = None


@schema("deeptune.data.text.TextDataModule")
class TextNode(LoaderNode):
    path: Annotated[Path, Required("data.path=<table.csv or table.parquet>")]
    text_column: Label = None
    label_column: Label = None
    task: Task = None
    tokenizer: Literal["bpe", "wordlevel"] = None
    vocab_size: Int(ge=3, le=10_000_000) = None
    max_length: Int(ge=1, le=1_000_000) = None
    lowercase: bool = None
    standardize: Literal[False] = None  # token ids are not standardised


@schema("deeptune.data.arrays.ArrayDataModule")
class NpyNode(LoaderNode):
    path: Annotated[Path, Required("data.path=<features.npy>")]
    labels: Annotated[Path, Required("data.labels=<labels.npy>")]
    task: Task = None
    standardize: bool = None
