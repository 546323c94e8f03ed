"""Numbers into words and tables: '0.972 ± 0.004', 'a, b and c', grouped mean ± std."""

import math

import numpy as np
import pandas as pd


def num(value, digits: int = 3) -> str:
    """0.9722 -> '0.972', 1.8e-10 -> '1.8e-10', NaN -> 'n/a'."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return str(value)
    value = float(value)
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    if value != 0 and (abs(value) < 10 ** -(digits - 1) or abs(value) >= 1e4):
        return f"{value:.2g}"
    if abs(value) >= 100:
        return f"{value:.0f}"
    return f"{value:.{digits}f}"


def pm(mean, std, digits: int = 3) -> str:
    """'0.972 ± 0.004' (just the mean for a single run)."""
    if std is None or (isinstance(std, float) and math.isnan(std)):
        return num(mean, digits)
    spread = f"{std:.{digits}f}" if std == 0 or std >= 10**-digits / 2 else f"{std:.1g}"
    mean_text = num(mean, digits)
    if "e" in mean_text:  # a ratio spanning decades: the spread in the same notation
        spread = f"{std:.2g}"
    return f"{mean_text} ± {spread}"


def mean_std(df: pd.DataFrame, by: list[str], columns: dict[str, str], digits: int = 3):
    """Rows grouped by `by` (in order of appearance): n and each column as 'mean ± std' (over
    the finite values; 'n/a' when none), headed by its label in `columns`."""
    rows = []
    for key, group in df.groupby(by, sort=False, dropna=False):
        key = key if isinstance(key, tuple) else (key,)
        row = {b: key_text(k) for b, k in zip(by, key, strict=True)}
        row["n"] = str(len(group))
        for column, label in columns.items():
            values = pd.to_numeric(group[column], errors="coerce")
            values = values[np.isfinite(values)]
            if values.empty:
                row[label] = "n/a"
            else:
                std = values.std() if len(values) > 1 else math.nan
                row[label] = pm(values.mean(), std, digits)
        rows.append(row)
    return pd.DataFrame(rows)


def key_text(value) -> str:
    """A table key: 0.01 -> '0.01', 4.0 -> '4', 'adam' -> 'adam'."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e6:
        return str(int(value))
    return f"{value:g}" if isinstance(value, float) else str(value)


def mean_pm(values: pd.Series) -> str:
    """'mean ± std' of a column's values, NaN left out; 'n/a' when there are none."""
    values = values.dropna()
    if values.empty:
        return "n/a"
    return num(values.mean()) + (f" ± {num(values.std())}" if len(values) > 1 else "")


def stats(df: pd.DataFrame, by: str | list[str], column: str) -> pd.DataFrame:
    """mean, std, n of `column` over the rows of each group, NaN (a failed job) left out of the
    mean but counted in `runs`."""
    values = pd.to_numeric(df[column], errors="coerce").replace([np.inf, -np.inf], np.nan)
    grouped = values.groupby([df[b] for b in ([by] if isinstance(by, str) else by)], sort=False)
    return pd.DataFrame(
        {"mean": grouped.mean(), "std": grouped.std(), "n": grouped.count(), "runs": grouped.size()}
    )


def seeds_phrase(df: pd.DataFrame) -> str:
    n = df["seed"].nunique() if "seed" in df and len(df) else 0
    return f"{n} seed{'s' if n != 1 else ''}"


def plural(n, word: str) -> str:
    """'1 epoch', '5 epochs', '2.5 epochs'."""
    return f"{key_text(n) if isinstance(n, float) else n} {word}{'' if n == 1 else 's'}"


def listing(items: list[str]) -> str:
    """'a', 'a and b', 'a, b and c'."""
    items = [i for i in items if i]
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def failures(df: pd.DataFrame, mask) -> str:
    """'2/3 runs failed (NaN loss)' style count for the rows in `mask`, '' when none failed."""
    rows = df[mask]
    bad = rows[~rows["state"].eq("completed")]
    return f"{len(bad)}/{len(rows)}" if len(bad) else ""


def geomean(values) -> float:
    """The geometric mean of the positive finite values (ratios spanning decades); 0 if any is 0;
    NaN if none."""
    v = pd.to_numeric(pd.Series(list(values)), errors="coerce").to_numpy(float)
    v = v[np.isfinite(v)]
    if not len(v):
        return math.nan
    if (v <= 0).any():
        return 0.0
    return float(np.exp(np.log(v).mean()))
