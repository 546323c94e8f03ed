"""The analyses' figures: matplotlib.figure.Figure (rendered with Agg, never left open)."""

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from deeptune.lab.results import curves


def figure(width: float = 5.5, height: float = 3.6, ncols: int = 1):
    fig = Figure(figsize=(width * ncols if ncols > 1 else width, height))
    axes = fig.subplots(1, ncols)
    return fig, axes


def band(ax, x, mean, std, label=None, **kwargs):
    """A line with markers and a shaded ± std band."""
    x, mean, std = np.asarray(x, float), np.asarray(mean, float), np.asarray(std, float)
    (line,) = ax.plot(x, mean, marker="o", ms=3, label=label, **kwargs)
    std = np.nan_to_num(std)
    ax.fill_between(x, mean - std, mean + std, color=line.get_color(), alpha=0.2, lw=0)
    return line


def mean_curves(df: pd.DataFrame, by: str, column: str) -> dict:
    """{group: (epochs, mean, std)} of a per-epoch column over each group's jobs."""
    out = {}
    for key, group in df.groupby(by, sort=False):
        frames = [c[column] for c in map(curves, group["path"]) if column in c]
        if not frames:
            continue
        stacked = pd.concat(frames, axis=1)
        out[key] = (stacked.index.to_numpy(), stacked.mean(axis=1), stacked.std(axis=1))
    return out
