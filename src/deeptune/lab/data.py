"""Lab-only data knobs: a smaller training split, one sorted by label, no partial last batch.

`data._target_: deeptune.lab.data.LabDataModule` in an experiment's config adds two keys to the
usual `data.*` ones; validation and test splits are untouched, so runs compare on the same data.
"""

import numpy as np
from sklearn.model_selection import train_test_split

from deeptune.data.datamodule import TensorDataModule
from deeptune.errors import ConfigError


class LabDataModule(TensorDataModule):
    """TensorDataModule, then:

    - `train_fraction` < 1: keep this share of the training split (stratified for
      classification, seeded by `split_seed`). The scaler was fitted on the whole training
      split, which is training data too: nothing of validation or test leaks.
    - `sort_by_label`: order the training split by label (stable), so that without shuffling
      (`data.shuffle=false`) every epoch sees all of class 0, then all of class 1, ...
    - `drop_last`: skip a last training batch smaller than `batch_size` (batch norm cannot
      normalise a batch of one, which 1,257 digits in batches of 2 would end with).
    """

    def __init__(
        self,
        source,
        train_fraction: float = 1.0,
        sort_by_label: bool = False,
        drop_last: bool = False,
        **kwargs,
    ):
        super().__init__(source, **kwargs)
        x, y = self.splits["train"]
        idx = np.arange(len(y))
        if train_fraction < 1:
            classify = source.task == "classification"
            try:
                idx, _ = train_test_split(
                    idx,
                    train_size=train_fraction,
                    random_state=kwargs.get("split_seed", 0),
                    stratify=y if classify else None,
                )
            except ValueError as err:
                raise ConfigError("data.train_fraction", train_fraction, str(err)) from None
            idx = np.sort(idx)
        if sort_by_label:
            idx = idx[np.argsort(y[idx], kind="stable")]
        self.splits["train"] = (x[idx], y[idx])
        self.drop_last = drop_last

    @property
    def smallest_train_batch(self) -> int:
        if self.drop_last and self.train_size >= self.batch_size:
            return self.batch_size
        return super().smallest_train_batch

    def train_dataloader(self):
        batches = super().train_dataloader()
        n = len(self.splits["train"][1])
        if not self.drop_last or n % self.batch_size == 0 or n < self.batch_size:
            return batches
        return _FullBatches(batches, self.batch_size, len(batches) - 1)


class _FullBatches:
    """The batches of `inner` that hold `size` samples (one process: only the last is short)."""

    def __init__(self, inner, size: int, length: int):
        self.inner, self.size, self.length = inner, size, length

    def __len__(self) -> int:
        return self.length

    def __iter__(self):
        for x, y in self.inner:
            if len(y) == self.size:
                yield x, y
