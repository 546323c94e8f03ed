"""Data sources: each returns a `Table` of features and targets (class labels or numbers).

They use numpy, pandas and scikit-learn only, so a bad source fails before torch loads.
scikit-learn is imported where it is used: importing it costs about a second, which
`python train.py --help` and a config error should not pay.
"""

import functools
import zipfile
from pathlib import Path

import numpy as np

from deeptune.data.scikit import without_pandas
from deeptune.errors import ConfigError
from deeptune.tasks import TASKS


class Table:
    """Features and targets of one task.

    x: float32, (n, features), (n, seq_len, features) for sequences, or (n, channels, height,
    width) for images.
    classification: y int64 labels (n,) in [0, len(classes)), `classes` their names.
    regression: y float32 targets (n,), `classes == []`.
    features: the names of the last axis's features (a CSV's columns; x0, x1, ... otherwise;
    an image's channels), which a checkpoint keeps so that new rows are matched to them by name.

    A plain class, not a dataclass: Hydra would turn a dataclass argument into a config.
    """

    def __init__(
        self,
        x: np.ndarray,
        y: np.ndarray,
        classes: list[str],
        task: str = "classification",
        features: list[str] | None = None,
    ):
        if task not in TASKS:
            raise ValueError(f"task must be one of {', '.join(TASKS)}, got {task!r}")
        self.x, self.y, self.classes, self.task = x, y, classes, task
        self.features = [str(f) for f in features] if features is not None else None

    @property
    def feature_names(self) -> list[str]:
        features = self.x.shape[1] if self.x.ndim == 4 else self.x.shape[-1]  # images: channels
        return self.features or [f"x{i}" for i in range(features)]

    @classmethod
    def regression(cls, x, y) -> "Table":
        return cls(
            np.asarray(x, dtype=np.float32), np.asarray(y, dtype=np.float32), [], "regression"
        )

    @classmethod
    def from_labels(cls, x, labels) -> "Table":
        classes, y = np.unique(np.asarray(labels), return_inverse=True)
        return cls(np.asarray(x, dtype=np.float32), y.astype(np.int64), [str(c) for c in classes])


@functools.cache
def _digits():
    """(data, images, target) of scikit-learn's digits, read from its compressed CSV once per
    process: every trial of a sweep and every job of a batched group loads them again (≈60-100
    ms each on this machine). Read-only; each Table gets its own float32 copy."""
    with without_pandas():
        from sklearn import datasets

    bunch = datasets.load_digits()
    arrays = (bunch.data, bunch.images, bunch.target)
    for array in arrays:
        array.setflags(write=False)
    return arrays


def digits() -> Table:
    """scikit-learn's bundled 8x8 handwritten digits: 1,797 images, 10 classes."""
    data, _, target = _digits()
    return Table.from_labels(data, target)


def digits_images() -> Table:
    """The same digits as images: x of shape (1797, 1, 8, 8), one grey channel, for a CNN."""
    _, images, target = _digits()
    return Table.from_labels(images[:, None], target)


def moons(n_samples: int = 1000, noise: float = 0.2, seed: int = 0) -> Table:
    with without_pandas():
        from sklearn import datasets

    return Table.from_labels(*datasets.make_moons(n_samples, noise=noise, random_state=seed))


def circles(n_samples: int = 1000, noise: float = 0.1, factor: float = 0.5, seed: int = 0):
    with without_pandas():
        from sklearn import datasets

    x, y = datasets.make_circles(n_samples, noise=noise, factor=factor, random_state=seed)
    return Table.from_labels(x, y)


def spirals(
    n_samples: int = 1500, n_classes: int = 3, turns: float = 1.0, noise: float = 0.2, seed: int = 0
) -> Table:
    """Interleaved 2-D spiral arms (scikit-learn has no generator for them)."""
    rng = np.random.default_rng(seed)
    y = np.arange(n_samples) % n_classes
    r = rng.uniform(0.05, 1.0, n_samples)
    theta = y * 2 * np.pi / n_classes + r * turns * 2 * np.pi + rng.normal(0, noise, n_samples)
    x = np.stack([r * np.cos(theta), r * np.sin(theta)], axis=1)
    return Table.from_labels(x, y)


def blobs(
    n_samples: int = 3000,
    n_features: int = 64,
    centers: int = 10,
    cluster_std: float = 6.0,
    seed: int = 0,
) -> Table:
    with without_pandas():
        from sklearn import datasets

    x, y = datasets.make_blobs(
        n_samples, n_features, centers=centers, cluster_std=cluster_std, random_state=seed
    )
    return Table.from_labels(x, y)


def classification(
    n_samples: int = 3000,
    n_features: int = 40,
    n_informative: int = 10,
    n_redundant: int = 10,
    n_classes: int = 5,
    class_sep: float = 1.0,
    flip_y: float = 0.01,
    seed: int = 0,
) -> Table:
    with without_pandas():
        from sklearn import datasets

    x, y = datasets.make_classification(
        n_samples,
        n_features,
        n_informative=n_informative,
        n_redundant=n_redundant,
        n_classes=n_classes,
        class_sep=class_sep,
        flip_y=flip_y,
        random_state=seed,
    )
    return Table.from_labels(x, y)


def _check_sequence(n_samples: int, seq_len: int) -> None:
    # The config rules catch these first; this guards direct calls.
    if seq_len < 2:
        raise ConfigError("data.source.seq_len", seq_len, "must be an integer >= 2")
    if n_samples < 10:
        raise ConfigError("data.source.n_samples", n_samples, "must be an integer >= 10")


def adding(n_samples: int = 5000, seq_len: int = 50, seed: int = 0) -> Table:
    """The adding problem (Hochreiter & Schmidhuber, 1997): a regression over a sequence.

    Each step is a pair (value, marker): values are U(0, 1), the marker is 1 at one step of
    the first half and one step of the second half, 0 elsewhere. The target is the sum of the
    two marked values, so the network must remember a value for up to `seq_len` steps.
    Features (n, seq_len, 2), targets (n,) in [0, 2].

    The target has variance 2 * 1/12, so always predicting its mean, 1.0, gives an MSE of
    about 0.167: the baseline a model that learned nothing sits at.
    """
    _check_sequence(n_samples, seq_len)
    rng = np.random.default_rng(seed)
    values = rng.uniform(0.0, 1.0, (n_samples, seq_len))
    markers = np.zeros((n_samples, seq_len))
    rows, half = np.arange(n_samples), seq_len // 2
    first = rng.integers(0, half, n_samples)
    second = rng.integers(half, seq_len, n_samples)
    markers[rows, first] = markers[rows, second] = 1.0
    y = values[rows, first] + values[rows, second]
    return Table.regression(np.stack([values, markers], axis=-1), y)


def temporal_order(n_samples: int = 3000, seq_len: int = 50, seed: int = 0) -> Table:
    """The temporal-order problem (Hochreiter & Schmidhuber, 1997): sequence classification.

    Each step is a one-hot symbol out of 6: four distractors (a, b, c, d) fill the sequence;
    one step in the first half and one in the second half hold a relevant symbol, X or Y.
    The class is their order: XX, XY, YX or YY (4 classes, chance 0.25). Features
    (n, seq_len, 6).

    Chosen over parity, which is unlearnable at sane budgets: on 4,000 random bit strings an
    LSTM, a GRU and a plain RNN (32 units, Adam) all stayed at chance (0.50) after 30 epochs
    for seq_len 10 and 20, and an LSTM that did learn seq_len=10 after ~70 epochs had seen
    all 1,024 such strings: a lookup table, not a rule. Temporal order is solved by an LSTM
    or a GRU in a few epochs while a plain RNN falls towards chance as seq_len grows.
    """
    _check_sequence(n_samples, seq_len)
    rng = np.random.default_rng(seed)
    symbols = rng.integers(0, 4, (n_samples, seq_len))  # distractors a, b, c, d
    rows, half = np.arange(n_samples), seq_len // 2
    first, second = rng.integers(0, 2, n_samples), rng.integers(0, 2, n_samples)  # X=0, Y=1
    symbols[rows, rng.integers(0, half, n_samples)] = 4 + first
    symbols[rows, rng.integers(half, seq_len, n_samples)] = 4 + second
    x = np.eye(6, dtype=np.float32)[symbols]
    names = np.array(["XX", "XY", "YX", "YY"])
    return Table.from_labels(x, names[2 * first + second])


def _existing(path: str, key: str) -> Path:
    p = Path(path).expanduser()
    if not p.is_file():
        raise ConfigError(key, path, "no such file (relative paths start from where you run)")
    return p


def csv(
    path: str,
    target: str = "label",
    features: list[str] | None = None,
    task: str = "classification",
) -> Table:
    """A table with a header row: numeric feature columns and one target column, read as class
    labels (task="classification") or as the numbers to predict (task="regression")."""
    file = _existing(path, "data.source.path")  # before pandas: a missing file fails fast
    import pandas as pd

    try:
        frame = pd.read_csv(file)
    except pd.errors.EmptyDataError:
        raise ConfigError(
            "data.source.path", path, "the file is empty: a CSV needs a header row and data rows"
        ) from None
    except (pd.errors.ParserError, UnicodeDecodeError) as err:
        reason = " ".join(str(err).split())
        raise ConfigError("data.source.path", path, f"cannot be read as CSV: {reason}") from None
    if frame.empty:  # checked first: every column of a header-only file reads as non-numeric
        raise ConfigError(
            "data.source.path",
            path,
            f"the file has column names {list(frame.columns)} but no rows: add data rows below "
            "the header",
        )
    if target not in frame.columns:
        raise ConfigError("data.source.target", target, f"columns are {list(frame.columns)}")
    cols = list(features) if features else [c for c in frame.columns if c != target]
    if missing := [c for c in cols if c not in frame.columns]:
        raise ConfigError("data.source.features", missing, f"columns are {list(frame.columns)}")
    if bad := [c for c in cols if not pd.api.types.is_numeric_dtype(frame[c])]:
        raise ConfigError(
            "data.source.path",
            path,
            f"feature column(s) {bad} are not numeric; encode them or drop them "
            "with data.source.features=[...]",
        )
    data = frame[cols + [target]]
    if data.isna().any().any():
        counts = data.isna().sum()
        where = ", ".join(f"{c} ({n})" for c, n in counts[counts > 0].items())
        raise ConfigError(
            "data.source.path",
            path,
            f"missing values (NaN) in column(s) {where}; impute or drop those rows",
        )
    x, y = data[cols].to_numpy(), data[target].to_numpy()
    table = _table(x, y, task, ("data.source.target", target), "CSV")
    table.features = [str(c) for c in cols]
    return table


def npz(
    path: str, features_key: str = "x", target_key: str = "y", task: str = "classification"
) -> Table:
    """A NumPy .npz archive (numpy.savez) with a (n, features), (n, seq_len, features) or
    (n, channels, height, width) array and a (n,) target array: class labels, or numbers with
    task="regression"."""
    file = _existing(path, "data.source.path")
    # np.load reads anything that is not a zip as a .npy or a pickle; a pickle can run code, so
    # only a zip reaches it, and never with allow_pickle.
    if not zipfile.is_zipfile(file):
        with open(file, "rb") as f:
            npy = f.read(6) == b"\x93NUMPY"
        what = "a single .npy array (numpy.save), not" if npy else "not"
        raise ConfigError(
            "data.source.path",
            path,
            f"the file is {what} an .npz archive: save the arrays together with "
            f"numpy.savez(path, {features_key}=features, {target_key}=targets)",
        )
    with np.load(file, allow_pickle=False) as archive:
        for key, name in (
            ("data.source.features_key", features_key),
            ("data.source.target_key", target_key),
        ):
            if name not in archive:
                raise ConfigError(key, name, f"arrays in the file are {list(archive.keys())}")
        x, y = (_array(archive, name, path) for name in (features_key, target_key))
    if x.ndim not in (2, 3, 4) or y.ndim != 1 or len(x) != len(y):
        raise ConfigError(
            "data.source.path",
            path,
            "need x of shape (n, features), (n, seq_len, features) or (n, channels, height, "
            f"width) and y of shape (n,), got {x.shape} and {y.shape}",
        )
    if len(y) == 0:
        raise ConfigError("data.source.path", path, f"the arrays have no rows: shape {x.shape}")
    if not np.issubdtype(x.dtype, np.number) or not np.isfinite(x).all():
        raise ConfigError("data.source.path", path, "features must be finite numbers (no NaN)")
    return _table(x, y, task, ("data.source.target_key", target_key), ".npz")


def _array(archive, name: str, path: str) -> np.ndarray:
    try:
        return archive[name]
    except ValueError:  # an object array: numpy would need a pickle to load it
        raise ConfigError(
            "data.source.path",
            path,
            f"array {name!r} holds Python objects (dtype=object), which are not loaded: "
            "save numbers or strings",
        ) from None


def _table(x, y: np.ndarray, task: str, target: tuple[str, str], kind: str) -> Table:
    """The features and the target column as a Table of `task`, or the reason they are not one.

    target: (its config key, its name); kind: the file type, for the messages."""
    numeric = np.issubdtype(y.dtype, np.number)
    if numeric and not np.isfinite(y).all():
        raise ConfigError(*target, "targets must be finite numbers (no NaN or inf)")
    if task == "regression":
        if not numeric and y.dtype != bool:
            raise ConfigError(*target, f"holds {y.dtype} values: a regression needs numbers")
        return Table.regression(x, y)
    classes = np.unique(y)
    if len(classes) < 2:
        raise ConfigError(
            *target,
            f"the target has a single class ({str(classes[0])!r}) in all {len(y)} rows: "
            "a classifier needs at least two",
        )
    if numeric and (looks := _continuous(y, len(classes))):
        raise ConfigError(
            "data.source.task",
            task,
            f"target {target[1]!r} looks continuous ({looks}) and {kind} targets are read as "
            "classes: set data.source.task=regression to predict the number (class labels: "
            "integers or text)",
        )
    return Table.from_labels(x, y)


def _continuous(y: np.ndarray, distinct: int) -> str | None:
    """Why numeric targets look like numbers to predict rather than class labels, if they do:
    fractions (labels are whole numbers), or more than 20 distinct values and more than half the
    rows (then some "class" has one sample, which no stratified split can place). A few labels
    in a few rows are a small classification; the split says what is wrong with it."""
    where = f"{distinct} distinct values in {len(y)} rows"
    if np.issubdtype(y.dtype, np.floating) and (y != np.round(y)).any():
        return f"non-integer numbers, {where}"
    return where if distinct > max(20, len(y) / 2) else None
