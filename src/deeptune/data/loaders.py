"""The DataLoader path: what the file-backed data modules (folders, text, arrays) share.

The tensor path (datamodule.TensorDataModule) slices tensors that sit on the device; data that is
decoded, tokenised or read from disk per batch goes through a torch DataLoader instead. Its order
comes from `SeededSampler`, a function of (seed, epoch) only, so restarts, a resumed run and DDP
keep the tensor path's guarantees.
"""

import hashlib
import os
from collections import OrderedDict
from types import SimpleNamespace

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from deeptune.data.datamodule import split_indices
from deeptune.data.scikit import without_pandas
from deeptune.errors import ConfigError


def epoch_seed(seed: int, epoch: int, *more: int) -> int:
    """One 64-bit seed mixed from (seed, epoch, ...): seed 1 at epoch 0 differs from seed 0 at
    epoch 1 (the restarts use seeds seed, seed+1, ...), which `seed + epoch` would not."""
    return int(np.random.SeedSequence([seed, epoch, *more]).generate_state(1, np.uint64)[0] >> 1)


class SeededSampler(DistributedSampler):
    """Indices in an order that depends on (seed, epoch) only; rank r of w takes every w-th.

    A DistributedSampler (rank and world size given, no process group needed), so Lightning
    keeps it under DDP instead of wrapping it, and calls `set_epoch` with the trainer's epoch at
    every epoch, a resumed one included. Training drops the last n % w samples so that every rank
    takes the same number of steps; evaluation pads as DistributedSampler does. With
    `with_epoch` it yields (epoch, index) pairs: per-sample augmentation seeds itself from them,
    the same in the main process and in any worker.
    """

    def __init__(self, n, shuffle, seed, rank=0, world_size=1, drop_last=False, with_epoch=False):
        super().__init__(
            range(n), world_size, rank, shuffle=shuffle, seed=seed, drop_last=drop_last
        )
        self.with_epoch = with_epoch

    def __iter__(self):
        n = len(self.dataset)
        if self.shuffle:
            generator = torch.Generator().manual_seed(epoch_seed(self.seed, self.epoch))
            order = torch.randperm(n, generator=generator).numpy()
        else:
            order = np.arange(n)
        # drop the tail (training), or repeat the head to pad (evaluation under DDP only)
        order = np.resize(order, self.total_size)
        shard = order[self.rank : self.total_size : self.num_replicas]
        # one index at a time from a numpy array: no list of millions of Python ints
        if self.with_epoch:
            return ((self.epoch, int(i)) for i in shard)
        return map(int, shard)


# What this process fitted lately (scalers, tokenizers), by everything the fit depends on:
# deeptune sets up one module to read its contract before the run, and each restart builds its
# own with the same training split, so a 2 GiB standardisation pass runs once, not N + 1 times.
FITTED: OrderedDict = OrderedDict()


def fitted(what: str, files, train: np.ndarray, params: tuple, fit):
    """fit(), or its result from the last fit of the same files (path, size, modification
    time), the same training indices and the same `params`."""
    stamps = tuple((str(f), *(lambda s: (s.st_size, s.st_mtime_ns))(os.stat(f))) for f in files)
    digest = hashlib.sha1(np.ascontiguousarray(train, dtype=np.int64).tobytes()).hexdigest()
    key = (what, stamps, digest, params)
    if key not in FITTED:
        FITTED[key] = fit()
        while len(FITTED) > 8:
            FITTED.popitem(last=False)
    FITTED.move_to_end(key)
    return FITTED[key]


def as_batch(batch):
    """The datasets' `__getitems__` returns a collated batch already (one fancy-index read of a
    memory map, one slice of token ids): nothing left to collate."""
    return batch


class LoaderDataModule(L.LightningDataModule):
    """Train / val / test of a data set read by a subclass, batched by DataLoaders.

    A subclass's constructor only stores its keys (a checkpoint rebuilds it without the data);
    `setup` calls its `_read()` once, which returns the labels and the fixed splits it found, and
    `_datasets(indices)` then builds one Dataset per split. Fitted state (scaler, tokenizer) goes
    through `state_dict` / `load_state_dict`, so `predict_inputs` works from a checkpoint.
    """

    augments = False  # whether the training dataset wants (epoch, index) pairs
    task = "classification"  # or "regression": a subclass whose files may hold either sets it

    def __init__(
        self,
        batch_size=64,
        eval_batch_size=1024,
        val_fraction=0.15,
        test_fraction=0.15,
        split_seed=0,
        shuffle=True,
        seed=0,
        num_workers=0,
        pin_memory=False,
        persistent_workers=False,
        fold=None,
    ):
        super().__init__()
        self.batch_size, self.eval_batch_size = batch_size, eval_batch_size
        self.val_fraction, self.test_fraction, self.split_seed = (
            val_fraction,
            test_fraction,
            split_seed,
        )
        self.shuffle, self.seed, self.fold = shuffle, seed, tuple(fold) if fold else None
        self.num_workers, self.pin_memory = num_workers, pin_memory
        self.persistent_workers = persistent_workers and num_workers > 0
        self.classes: list[str] = []
        self.indices: dict[str, np.ndarray] | None = None
        self.datasets: dict[str, Dataset] = {}

    # -- what deeptune reads after setup("fit") -------------------------------------------------

    @property
    def num_outputs(self) -> int:
        return 1 if self.task == "regression" else len(self.classes)

    @property
    def train_size(self) -> int:
        return len(self.indices["train"])

    @property
    def smallest_train_batch(self) -> int:
        return self.train_size % self.batch_size or min(self.train_size, self.batch_size)

    feature_names = None

    # -- reading and splitting ------------------------------------------------------------------

    def setup(self, stage: str | None = None) -> None:
        if self.indices is not None:  # deeptune calls it before the trainer, the trainer again
            return
        labels, given = self._read()
        self.indices = self._split(labels, given)
        self.datasets = self._datasets(self.indices)

    def _read(self) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """(labels of every sample, {split: indices} the files fix, e.g. a val/ folder)."""
        raise NotImplementedError

    def _datasets(self, indices: dict[str, np.ndarray]) -> dict[str, Dataset]:
        raise NotImplementedError

    def _split(self, labels: np.ndarray, given: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Stratified for classification, like the tensor path (datamodule.split_indices), over
        the samples no file assigned: a given test split stays fixed, a given val split joins
        the training pool for K-fold (`fold=(k, K)` cuts train + val, never test)."""
        fixed = np.concatenate([np.zeros(0, np.int64), *given.values()])
        pool = np.setdiff1d(np.arange(len(labels)), fixed)
        if "val" in given and self.fold is not None:
            pool = np.union1d(pool, given["val"])
            given = {k: v for k, v in given.items() if k != "val"}
        table = SimpleNamespace(y=labels[pool], task=self.task)
        # Fractions of the whole set; what the files fixed is not cut again.
        test = self.test_fraction if "test" not in given else None
        val = self.val_fraction if "val" not in given else None
        if test is None and val is None and self.fold is None:
            return {"train": pool, **given}
        if test is None:  # only val (or folds) to cut: one split of the pool
            parts = _cut(table, val, self.split_seed, self.fold, "val")
        elif val is None:
            parts = _cut(table, test, self.split_seed, None, "test")
        else:
            parts = split_indices(table, val, test, self.split_seed, self.fold)
        return {**{name: pool[i] for name, i in parts.items()}, **given}

    # -- batches --------------------------------------------------------------------------------

    def _loader(self, name: str, train: bool = False) -> DataLoader:
        rank, world = (
            (self.trainer.global_rank, self.trainer.world_size) if self.trainer else (0, 1)
        )
        dataset = self.datasets[name]
        sampler = SeededSampler(
            len(dataset),
            shuffle=train and self.shuffle,
            seed=self.seed,
            rank=rank,
            world_size=world,
            drop_last=train,
            with_epoch=train and self.augments,
        )
        return DataLoader(
            dataset,
            batch_size=self.batch_size if train else self.eval_batch_size,
            sampler=sampler,
            collate_fn=as_batch,
            num_workers=self.num_workers,
            pin_memory=self.pin_memory,
            persistent_workers=self.persistent_workers,
        )

    def train_dataloader(self):
        return self._loader("train", train=True)

    def val_dataloader(self):
        return self._loader("val")

    def test_dataloader(self):
        return self._loader("test")

    def predict_dataloader(self):
        return self._loader("test")


def _cut(table, fraction, seed, fold, name) -> dict[str, np.ndarray]:
    """Indices into `table` for train and one other split (`name`): a stratified fraction, or
    fold k of K."""
    with without_pandas():
        from sklearn.model_selection import KFold, StratifiedKFold, train_test_split

    idx, classify = np.arange(len(table.y)), table.task == "classification"
    try:
        if fold is not None:
            k, folds = fold
            cuts = (StratifiedKFold if classify else KFold)(folds, shuffle=True, random_state=seed)
            train, other = list(cuts.split(idx, table.y))[k]
        else:
            train, other = train_test_split(
                idx, test_size=fraction, random_state=seed, stratify=table.y if classify else None
            )
    except ValueError as err:
        key, value = ("cv.folds", fold[1]) if fold else (f"data.{name}_fraction", fraction)
        raise ConfigError(key, value, f"cannot split {len(idx)} samples: {err}") from None
    return {"train": train, name: other}


def class_indices(labels, classes: list[str] | None = None) -> tuple[np.ndarray, list[str]]:
    """Labels -> (class indices, class names): given names, or the distinct labels sorted (by
    value for numbers, so 2 comes before 10), as text: the network's output order."""
    labels = np.asarray(labels)
    if classes is None:
        if labels.dtype == object:  # pandas' text columns
            labels = labels.astype(str)
        unique, y = np.unique(labels, return_inverse=True)
        return y.astype(np.int64).reshape(-1), [str(u) for u in unique]
    lookup = {c: i for i, c in enumerate(classes)}
    return np.fromiter((lookup[str(v)] for v in labels), np.int64, len(labels)), list(classes)


def targets(values, task: str, key: str) -> tuple[torch.Tensor, list[str]]:
    """A label column as the training target: class indices, or float numbers."""
    if task == "classification":
        y, classes = class_indices(values)
        if len(classes) < 2:
            raise ConfigError(key, f"{len(classes)} class", "classification needs two or more")
        return torch.from_numpy(y), classes
    try:
        y = np.asarray(values, dtype=np.float32)
    except (TypeError, ValueError):
        raise ConfigError(key, "non-numeric labels", "a regression predicts numbers") from None
    return torch.from_numpy(y), []
