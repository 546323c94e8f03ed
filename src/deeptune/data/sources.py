"""Data sources: each returns a `Table` of features and integer labels.

They use numpy, pandas and scikit-learn only, so a bad source fails before torch loads.
"""

from pathlib import Path

import numpy as np
from sklearn import datasets

from deeptune.errors import ConfigError


class Table:
    """Features (n, features) float32, labels (n,) int64 in [0, n_classes), class names.

    A plain class, not a dataclass: Hydra would turn a dataclass argument into a config.
    """

    def __init__(self, x: np.ndarray, y: np.ndarray, classes: list[str]):
        self.x, self.y, self.classes = x, y, classes

    @classmethod
    def from_labels(cls, x, labels) -> "Table":
        classes, y = np.unique(np.asarray(labels), return_inverse=True)
        return cls(np.asarray(x, dtype=np.float32), y.astype(np.int64), [str(c) for c in classes])


def digits() -> Table:
    """scikit-learn's bundled 8x8 handwritten digits: 1,797 images, 10 classes."""
    bunch = datasets.load_digits()
    return Table.from_labels(bunch.data, bunch.target)


def moons(n_samples: int = 1000, noise: float = 0.2, seed: int = 0) -> Table:
    return Table.from_labels(*datasets.make_moons(n_samples, noise=noise, random_state=seed))


def circles(n_samples: int = 1000, noise: float = 0.1, factor: float = 0.5, seed: int = 0):
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


def _existing(path: str, key: str) -> Path:
    p = Path(path).expanduser()
    if not p.is_file():
        raise ConfigError(key, path, "no such file (relative paths start from where you run)")
    return p


def csv(path: str, target: str = "label", features: list[str] | None = None) -> Table:
    """A table with a header row: numeric feature columns and one label column."""
    import pandas as pd

    frame = pd.read_csv(_existing(path, "data.source.path"))
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
    return Table.from_labels(data[cols].to_numpy(), data[target].to_numpy())


def npz(path: str, features_key: str = "x", target_key: str = "y") -> Table:
    """A NumPy .npz archive with a (n, features) array and a (n,) label array."""
    with np.load(_existing(path, "data.source.path")) as archive:
        for key, name in (
            ("data.source.features_key", features_key),
            ("data.source.target_key", target_key),
        ):
            if name not in archive:
                raise ConfigError(key, name, f"arrays in the file are {list(archive.keys())}")
        x, y = archive[features_key], archive[target_key]
    if x.ndim != 2 or y.ndim != 1 or len(x) != len(y):
        raise ConfigError(
            "data.source.path",
            path,
            f"need x of shape (n, features) and y of shape (n,), got {x.shape} and {y.shape}",
        )
    if not np.issubdtype(x.dtype, np.number) or not np.isfinite(x).all():
        raise ConfigError("data.source.path", path, "features must be finite numbers (no NaN)")
    return Table.from_labels(x, y)
