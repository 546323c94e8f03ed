"""A LightningDataModule for tables that fit in memory: tensors on the device, sliced."""

import math

import lightning as L
import numpy as np
import torch

from deeptune.data.scikit import without_pandas
from deeptune.data.sources import Table
from deeptune.errors import ConfigError

with without_pandas():
    from sklearn.model_selection import KFold, StratifiedKFold, train_test_split
    from sklearn.preprocessing import StandardScaler


class TensorBatches:
    """Batches sliced from tensors that already sit on the training device.

    A DataLoader would collate sample by sample; slicing is several times cheaper for small
    models. The shuffle order depends on (seed, epoch) only, so a run resumed from a
    checkpoint sees the same batches as an uninterrupted one. Under DDP each rank takes every
    world_size-th sample; training shards have equal length so all ranks take the same number
    of steps.
    """

    def __init__(
        self,
        x,
        y,
        batch_size,
        shuffle=False,
        seed=0,
        rank=0,
        world_size=1,
        equal_shards=False,
        epoch=None,
    ):
        self.x, self.y, self.batch_size, self.shuffle = x, y, batch_size, shuffle
        self.rank, self.world_size = rank, world_size
        n = len(x) - len(x) % world_size if equal_shards else len(x)
        self.n_used = n
        self.seed = seed
        self.epoch = epoch or (lambda: 0)  # the trainer's epoch counter, resumes included

    def _indices(self) -> torch.Tensor:
        n = len(self.x)
        if self.shuffle:
            seed = int(np.random.SeedSequence([self.seed, self.epoch()]).generate_state(1)[0])
            order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
        else:
            order = torch.arange(n)
        return order[: self.n_used][self.rank :: self.world_size].to(self.x.device)

    def __len__(self) -> int:
        shard = len(range(self.rank, self.n_used, self.world_size))
        return math.ceil(shard / self.batch_size)

    def __iter__(self):
        idx = self._indices()
        if not self.shuffle and self.world_size == 1:  # contiguous views, no gather
            for i in range(0, len(idx), self.batch_size):
                yield self.x[i : i + self.batch_size], self.y[i : i + self.batch_size]
            return
        for batch in idx.split(self.batch_size):
            yield self.x[batch], self.y[batch]


class TensorDataModule(L.LightningDataModule):
    """Train / val / test split of a `Table` (stratified for classification), standardised on
    the training split."""

    def __init__(
        self,
        source: Table,
        batch_size: int = 64,
        eval_batch_size: int = 1024,
        val_fraction: float = 0.15,
        test_fraction: float = 0.15,
        split_seed: int = 0,
        standardize: bool = True,
        shuffle: bool = True,
        seed: int = 0,
        fold: tuple[int, int] | None = None,
    ):
        super().__init__()
        self.table = source
        self.batch_size, self.eval_batch_size = batch_size, eval_batch_size
        self.shuffle, self.seed = shuffle, seed
        self.indices = split_indices(source, val_fraction, test_fraction, split_seed, fold)
        # The training split's mean and std, kept for the checkpoint: predicting on raw rows
        # later must scale them exactly as these were (deeptune.predictor).
        self.scaler = fit_scaler(source.x, self.indices["train"]) if standardize else None
        self.splits = _slices(source, self.indices, self.scaler)
        self.tensors: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}

    @property
    def task(self) -> str:
        return self.table.task

    @property
    def input_shape(self) -> tuple[int, ...]:
        """One sample's shape: (features,), (seq_len, features) or (channels, height, width)."""
        return tuple(self.table.x.shape[1:])

    @property
    def train_size(self) -> int:
        return len(self.splits["train"][1])

    @property
    def smallest_train_batch(self) -> int:
        """Samples in the smallest training batch of an epoch (in one process)."""
        return self.train_size % self.batch_size or min(self.train_size, self.batch_size)

    @property
    def num_classes(self) -> int:
        return len(self.table.classes)

    @property
    def num_outputs(self) -> int:
        """The network's outputs: one per class, or 1 for regression."""
        return 1 if self.task == "regression" else self.num_classes

    def setup(self, stage: str | None = None) -> None:
        device = self.trainer.strategy.root_device if self.trainer else torch.device("cpu")
        self.tensors = {
            name: (torch.from_numpy(x).to(device), torch.from_numpy(y).to(device))
            for name, (x, y) in self.splits.items()
        }

    def _batches(self, name: str, train: bool = False) -> TensorBatches:
        rank, world = (
            (self.trainer.global_rank, self.trainer.world_size) if self.trainer else (0, 1)
        )
        x, y = self.tensors[name]
        return TensorBatches(
            x,
            y,
            self.batch_size if train else self.eval_batch_size,
            shuffle=train and self.shuffle,
            seed=self.seed,
            rank=rank,
            world_size=world,
            equal_shards=train,
            epoch=lambda: self.trainer.current_epoch if self.trainer else 0,
        )

    def train_dataloader(self):
        return self._batches("train", train=True)

    def val_dataloader(self):
        return self._batches("val")

    def test_dataloader(self):
        return self._batches("test")

    def predict_dataloader(self):
        return self._batches("test")


def split(
    table: Table,
    val_fraction: float,
    test_fraction: float,
    seed: int,
    standardize: bool,
    fold: tuple[int, int] | None = None,
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{split: (x, y)}: `split_indices`, standardised on the training split when asked."""
    indices = split_indices(table, val_fraction, test_fraction, seed, fold)
    return _slices(table, indices, fit_scaler(table.x, indices["train"]) if standardize else None)


def split_indices(
    table: Table,
    val_fraction: float,
    test_fraction: float,
    seed: int,
    fold: tuple[int, int] | None = None,
) -> dict[str, np.ndarray]:
    """Random split, stratified by class for classification; the scaler sees the training split
    only, so nothing leaks.

    With `fold=(k, K)` the data outside the test split is cut into K folds (stratified for
    classification) and fold k validates (K-fold cross-validation); the test split is the same
    for every fold. Sequences (n, seq_len, features) are standardised per feature, over samples
    and steps alike.
    """
    idx = np.arange(len(table.y))
    classify = table.task == "classification"
    try:
        rest, test = train_test_split(
            idx, test_size=test_fraction, random_state=seed, stratify=table.y if classify else None
        )
        if fold is None:
            train, val = train_test_split(
                rest,
                test_size=val_fraction / (1 - test_fraction),
                random_state=seed,
                stratify=table.y[rest] if classify else None,
            )
        else:
            k, folds = fold
            cuts = (StratifiedKFold if classify else KFold)(folds, shuffle=True, random_state=seed)
            train, val = (rest[i] for i in list(cuts.split(rest, table.y[rest]))[k])
    except ValueError as err:  # e.g. a class too small to appear in every split
        how = "by class" if classify else "into train / val / test"
        key, value = ("cv.folds", fold[1]) if fold else ("data.val_fraction", val_fraction)
        message = f"cannot split {len(idx)} samples {how}: {' '.join(str(err).split())}"
        raise ConfigError(key, value, message) from None
    return {"train": train, "val": val, "test": test}


def fit_scaler(x: np.ndarray, train: np.ndarray) -> dict[str, list[float]]:
    """The training rows' per-feature mean and std (StandardScaler's mean_ and scale_, which is
    1 for a constant feature), as plain lists: a checkpoint holds plain values only.

    Features are the last axis, so a sequence (n, seq_len, features) is scaled per feature over
    samples and steps alike; images (n, channels, height, width) are scaled per channel over
    samples and pixels alike (`axis: 1` in the scaler, which `scale` reads).
    """
    rows = x[train]
    axis = 1 if x.ndim == 4 else -1
    features = np.moveaxis(rows, axis, -1).reshape(-1, x.shape[axis])
    scaler = StandardScaler().fit(features)
    fitted = {"mean": scaler.mean_.tolist(), "std": scaler.scale_.tolist()}
    return fitted | {"axis": 1} if axis == 1 else fitted


def scale(x: np.ndarray, scaler: dict | None) -> np.ndarray:
    """Raw features -> standardised float32, the same operations in the same precision as
    StandardScaler.transform, so a checkpoint scores raw rows exactly as training did."""
    out = np.array(x, dtype=np.float32)  # a copy: scaled in place below
    if scaler is not None:
        # The scaled axis (1: an image's channels) broadcast over the axes after it; a
        # scaler without `axis` (every one before images) scales the last axis.
        axis = scaler.get("axis", -1) % out.ndim
        shape = (-1,) + (1,) * (out.ndim - 1 - axis)
        out -= np.asarray(scaler["mean"], dtype=np.float32).reshape(shape)  # as sklearn
        out /= np.asarray(scaler["std"], dtype=np.float32).reshape(shape)
    return out


def _slices(table: Table, indices: dict, scaler: dict | None) -> dict:
    x = scale(table.x, scaler) if scaler is not None else table.x
    return {name: (x[i], table.y[i]) for name, i in indices.items()}
