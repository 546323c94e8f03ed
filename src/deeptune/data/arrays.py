"""Arrays bigger than memory: `data=npy data.path=<x.npy> data.labels=<y.npy>`.

The features file is opened as a memory map (np.load(mmap_mode="r"): its header, shape and
dtype, nothing read) and each batch reads its rows by index, in the DataLoader's workers when
`num_workers` > 0. The rows are read with positioned reads (os.preadv, one per run of
consecutive rows) into the batch's own buffer rather than through the map: a page fault on a
mapping maps the page cache's whole folio around the row (Linux 6.x maps up to 2 MiB per fault
for a freshly written file, so 1,000 random rows mapped 1.2 GiB here), and mapped pages count
in the resident set until released. Read this way the process's resident memory stays flat
however big the file (scripts/bench_mmap.py measures it); the kernel's page cache still serves
repeated reads. The labels file is read whole.

Standardisation (data.standardize, on by default like every data set here) costs one pass over
the training rows in sorted chunks, float64 sums merged chunk by chunk; unscaled features train
badly, and the pass reads no more than an epoch does.
"""

import os
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from deeptune.data.datamodule import scale
from deeptune.data.loaders import LoaderDataModule, fitted, targets
from deeptune.errors import ConfigError

CHUNK_BYTES = 16 * 2**20  # rows read at a time by the statistics pass


def open_array(path, key: str) -> np.ndarray:
    path = Path(path).expanduser()
    if not path.is_file():
        raise ConfigError(key, str(path), "no such file")
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except ValueError as err:
        raise ConfigError(key, str(path), f"not a .npy array: {err}") from None
    if not isinstance(array, np.ndarray):  # an .npz archive: its arrays come by name
        array.close()
        why = "an .npz archive: use data=npz (in memory), or save each array with np.save (.npy)"
        raise ConfigError(key, str(path), why)
    return array


class Rows:
    """Rows of a .npy file by index, read into a fresh array (nothing stays mapped). Opened in
    each process that reads: a pickled np.memmap would copy the whole file into every worker."""

    def __init__(self, path: str):
        self.path = path
        self._file = self._map = None

    def __getstate__(self):
        return {"path": self.path, "_file": None, "_map": None}

    def _open(self) -> None:
        self._map = np.load(self.path, mmap_mode="r")
        if not self._map.flags.c_contiguous or not hasattr(os, "preadv"):
            return  # a Fortran-ordered file, or no preadv (Windows): read through the map
        self._file = open(self.path, "rb", buffering=0)  # noqa: SIM115 (kept open: many reads)

    @property
    def sample_shape(self) -> tuple[int, ...]:
        if self._map is None:
            self._open()
        return self._map.shape[1:]

    def __getitem__(self, rows: np.ndarray) -> np.ndarray:
        """`rows` sorted ascending -> (len(rows), *sample_shape) in the file's dtype."""
        if self._map is None:
            self._open()
        x = self._map
        if self._file is None:
            return np.ascontiguousarray(x[rows])
        out = np.empty((len(rows), *x.shape[1:]), dtype=x.dtype)
        size = out[0].nbytes if len(rows) else 0
        view = memoryview(out.reshape(-1).view(np.uint8))
        cuts = np.flatnonzero(np.diff(rows) != 1) + 1  # runs of consecutive rows: one read each
        for first, stop in zip(np.r_[0, cuts], np.r_[cuts, len(rows)], strict=True):
            want, at = (stop - first) * size, x.offset + int(rows[first]) * size
            done = os.preadv(self._file.fileno(), [view[first * size : stop * size]], at)
            if done != want:
                raise OSError(f"{self.path}: short read ({done} of {want} bytes at {at})")
        return out


class RowSet(Dataset):
    """Rows `rows` of a .npy file, standardised."""

    def __init__(self, path: str, rows: np.ndarray, y: torch.Tensor, scaler: dict | None):
        self.file, self.rows, self.y, self.scaler = Rows(path), rows, y, scaler

    def __len__(self):
        return len(self.rows)

    def __getitem__(self, i):
        x, y = self.__getitems__([i])
        return x[0], y[0]

    def __getitems__(self, keys):
        keys = np.asarray(keys)
        rows = self.rows[keys]
        order = np.argsort(rows, kind="stable")  # read forward through the file
        x = np.empty((len(rows), *self.file.sample_shape), dtype=np.float32)
        x[order] = scale(self.file[rows[order]], self.scaler)
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
            x, train = open_array(self.path, "data.path"), indices["train"]
            self.scaler = fitted("npy", [x.filename], train, (), lambda: chunked_scaler(x, train))
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
    step = max(1, CHUNK_BYTES // max(1, x.dtype.itemsize * int(np.prod(x.shape[1:]))))
    count, mean, m2 = 0, np.zeros(features), np.zeros(features)
    read = Rows(x.filename).__getitem__ if isinstance(x, np.memmap) else x.__getitem__
    for start in range(0, len(rows), step):
        chunk = np.asarray(read(rows[start : start + step]), np.float64).reshape(-1, features)
        n, chunk_mean = len(chunk), chunk.mean(0)
        delta = chunk_mean - mean
        m2 += ((chunk - chunk_mean) ** 2).sum(0) + delta**2 * count * n / (count + n)
        mean += delta * n / (count + n)
        count += n
    std = np.sqrt(m2 / count)
    std[std < 1e-12] = 1.0  # sklearn's guard against dividing by a constant feature's zero
    return {"mean": mean.tolist(), "std": std.tolist()}
