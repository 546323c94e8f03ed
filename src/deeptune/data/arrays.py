"""Arrays bigger than memory: `data=npy data.path=<x.npy> data.labels=<y.npy>`.

The features file is memory-mapped (np.load(mmap_mode="r")) and each batch reads its rows by
index, in the DataLoader's workers when `num_workers` > 0. After every read the mapping's pages
are handed back to the page cache (madvise MADV_DONTNEED): the process's resident memory stays
flat however big the file (scripts/bench_mmap.py measures it). The labels file is read whole.

Standardisation (data.standardize, on by default like every data set here) costs one sequential
pass over the training rows in chunks, float64 sums merged chunk by chunk; unscaled features
train badly, and one pass is what an epoch reads anyway.
"""

import mmap
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from deeptune.data.datamodule import scale
from deeptune.data.loaders import LoaderDataModule, targets
from deeptune.errors import ConfigError

CHUNK_BYTES = 16 * 2**20  # rows read at a time by the statistics pass
# Bytes a reader may keep mapped before handing them back: resident memory stays under about
# this much above the interpreter's. A page fault maps the 16 pages around the one read (Linux's
# fault-around, 64 KiB) when they are in the page cache, so a row counts for that much more.
RESIDENT_BYTES = 64 * 2**20
FAULT_AROUND = 16 * mmap.PAGESIZE


def open_array(path, key: str) -> np.ndarray:
    path = Path(path).expanduser()
    if not path.is_file():
        raise ConfigError(key, str(path), "no such file")
    try:
        return np.load(path, mmap_mode="r", allow_pickle=False)
    except ValueError as err:
        raise ConfigError(key, str(path), f"not a .npy array: {err}") from None


def advise(array: np.ndarray, advice: int) -> None:
    handle = getattr(array, "_mmap", None)
    if handle is not None and hasattr(handle, "madvise"):  # no madvise on Windows
        handle.madvise(advice)


def release(array: np.ndarray) -> None:
    """Drop the mapping's resident pages from this process (the page cache keeps them)."""
    advise(array, mmap.MADV_DONTNEED)


class RowSet(Dataset):
    """Rows `rows` of a memory-mapped file, standardised. The map is opened in each process
    that reads (a pickled np.memmap would copy the whole file into every worker)."""

    def __init__(self, path: str, rows: np.ndarray, y: torch.Tensor, scaler: dict | None):
        self.path, self.rows, self.y, self.scaler = path, rows, y, scaler
        self._x, self._mapped = None, 0

    def __getstate__(self):
        return {**self.__dict__, "_x": None}

    def __len__(self):
        return len(self.rows)

    def __getitem__(self, i):
        x, y = self.__getitems__([i])
        return x[0], y[0]

    def __getitems__(self, keys):
        if self._x is None:
            self._x = np.load(self.path, mmap_mode="r")
            advise(self._x, mmap.MADV_RANDOM)  # rows in random order: no read-ahead from disk
        keys = np.asarray(keys)
        rows = self.rows[keys]
        order = np.argsort(rows, kind="stable")  # read forward through the file
        x = np.empty((len(rows), *self._x.shape[1:]), dtype=np.float32)
        per_row = self._x[0].nbytes + FAULT_AROUND  # what reading a row may map, at most
        step = max(1, RESIDENT_BYTES // per_row)
        for start in range(0, len(rows), step):  # a big batch is read in parts, each released
            part = order[start : start + step]
            x[part] = scale(self._x[rows[part]], self.scaler)
            self._mapped += len(part) * per_row
            if self._mapped >= RESIDENT_BYTES:
                release(self._x)
                self._mapped = 0
        return torch.from_numpy(x), self.y[torch.from_numpy(keys)]


class ArrayDataModule(LoaderDataModule):
    def __init__(
        self,
        path: str,
        labels: str,
        task: str = "classification",
        standardize: bool = True,
        **common,
    ):
        super().__init__(**common)
        self.path, self.labels, self.task, self.standardize = path, labels, task, standardize
        self.scaler: dict | None = None
        self.shape: tuple[int, ...] | None = None

    @property
    def input_shape(self) -> tuple[int, ...]:
        return self.shape

    def _read(self):
        x = open_array(self.path, "data.path")
        if x.ndim < 2 or not np.issubdtype(x.dtype, np.number):
            raise ConfigError("data.path", f"shape {x.shape} {x.dtype}", "need numbers (n, ...)")
        labels = np.asarray(open_array(self.labels, "data.labels")).reshape(-1)
        if len(labels) != len(x):
            why = f"{len(labels)} labels for {len(x)} rows of data.path"
            raise ConfigError("data.labels", self.labels, why)
        self.shape = tuple(int(d) for d in x.shape[1:])
        self.y, self.classes = targets(labels, self.task, "data.labels")
        return self.y.numpy(), {}

    def _datasets(self, indices):
        if self.standardize and self.scaler is None:
            self.scaler = chunked_scaler(open_array(self.path, "data.path"), indices["train"])
        return {
            name: RowSet(str(Path(self.path).expanduser()), rows, self.y[rows], self.scaler)
            for name, rows in indices.items()
        }

    def state_dict(self) -> dict:
        shape = list(self.shape) if self.shape else None
        return {"scaler": self.scaler, "input_shape": shape, "classes": list(self.classes)}

    def load_state_dict(self, state: dict) -> None:
        self.scaler, self.classes = state["scaler"], list(state["classes"])
        self.shape = tuple(state["input_shape"])
        if self.indices is not None:
            self.datasets = self._datasets(self.indices)

    def predict_inputs(self, raw) -> torch.Tensor:
        """An array (n, *input_shape), or a .npy file of one, standardised as in training."""
        if isinstance(raw, (str, Path)):
            raw = open_array(raw, "input")
        x = np.asarray(raw)
        if x.shape[1:] != self.shape or not np.issubdtype(x.dtype, np.number):
            shape = ", ".join(str(d) for d in self.shape)
            raise ConfigError("input", f"shape {x.shape}", f"need numbers of shape (n, {shape})")
        return torch.from_numpy(scale(x, self.scaler))


def chunked_scaler(x: np.ndarray, train: np.ndarray) -> dict[str, list[float]]:
    """Per-feature (last axis) mean and std of the training rows, read in sorted chunks: each
    chunk's float64 mean and sum of squared deviations merged into the running ones (Chan et
    al.), the population std as StandardScaler's, 1 for a constant feature."""
    features = x.shape[-1]
    rows = np.sort(train)
    step = max(1, CHUNK_BYTES // max(1, x[0].nbytes))
    count, mean, m2 = 0, np.zeros(features), np.zeros(features)
    for start in range(0, len(rows), step):
        chunk = np.asarray(x[rows[start : start + step]], dtype=np.float64).reshape(-1, features)
        release(x)
        n, chunk_mean = len(chunk), chunk.mean(0)
        delta = chunk_mean - mean
        m2 += ((chunk - chunk_mean) ** 2).sum(0) + delta**2 * count * n / (count + n)
        mean += delta * n / (count + n)
        count += n
    std = np.sqrt(m2 / count)
    std[std < 1e-12] = 1.0  # sklearn's guard against dividing by a constant feature's zero
    return {"mean": mean.tolist(), "std": std.tolist()}
