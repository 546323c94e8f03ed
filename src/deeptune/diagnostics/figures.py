"""The diagnostics' figures. matplotlib.figure.Figure rather than pyplot: it renders with Agg
whatever the display, and nothing global is left open."""

import numpy as np
from matplotlib import colormaps
from matplotlib.figure import Figure
from matplotlib.ticker import LogFormatter


def grad_health_figure(history: list[dict], verdict: str) -> Figure:
    """Left: each layer's gradient norm over training (log scale). Right: per-layer gradient
    norm at the first and the last measurement, the profile that shows where gradients die."""
    layers = list(history[-1]["grad"])
    colours = colormaps["viridis"](np.linspace(0, 0.9, len(layers)))
    timed = [r for r in history if "time" in r]  # sequence inputs: first / last time step
    # Plain "1e-05" tick labels and a fixed layout: matplotlib's math text and constrained
    # layout took most of the half second this figure cost at the end of every run.
    fig = Figure(figsize=(15 if timed else 11, 4.4))
    fig.subplots_adjust(left=0.08, right=0.98, bottom=0.2, top=0.92, wspace=0.3)
    axes = fig.subplots(1, 3 if timed else 2, width_ratios=[3, 2, 2] if timed else [3, 2])
    over_time, profile = axes[0], axes[1]
    if timed:
        axes[2].plot([r["step"] for r in timed], [r["time"]["ratio"] for r in timed], "k.-")
        axes[2].set(yscale="log", xlabel="optimiser step", ylabel="‖∂loss/∂x₁‖ / ‖∂loss/∂x_T‖")
        axes[2].set_title("gradient reaching the first time step")
    steps = [r["step"] for r in history]
    for layer, colour in zip(layers, colours, strict=True):
        norms = [r["grad"].get(layer, np.nan) for r in history]
        over_time.plot(steps, norms, color=colour, label=layer, lw=1.2)
    over_time.set(yscale="log", xlabel="optimiser step", ylabel="gradient norm (before clipping)")
    over_time.set_title("gradient norm per layer")
    if len(layers) <= 14:
        over_time.legend(fontsize=7, ncol=2)
    positions = np.arange(len(layers))
    for record, style, label in ((history[0], "o--", "first step"), (history[-1], "s-", "last")):
        norms = [record["grad"].get(layer, np.nan) for layer in layers]
        profile.plot(positions, norms, style, label=f"{label} ({record['step']})")
    profile.set(yscale="log", xlabel="layer (input → output)", ylabel="gradient norm")
    profile.set_xticks(positions, layers, rotation=60, fontsize=7)
    profile.set_title(f"profile across layers — verdict: {verdict}")
    profile.legend(fontsize=8)
    for ax in axes:
        ax.yaxis.set_major_formatter(LogFormatter())
    return fig


def tsne_figure(points: np.ndarray, y: np.ndarray, wrong: np.ndarray, labels, title) -> Figure:
    """2-D embedding coloured by true class (or target value); misclassified points ringed."""
    fig = Figure(figsize=(6.4, 5.6), layout="constrained")
    ax = fig.subplots()
    if labels:  # classes
        cmap = colormaps["tab10" if len(labels) <= 10 else "tab20"]
        for k, name in enumerate(labels):
            mine = y == k
            ax.scatter(*points[mine].T, s=9, color=cmap(k % cmap.N), label=name)
        if wrong.any():
            ax.scatter(
                *points[wrong].T,
                s=40,
                facecolors="none",
                edgecolors="black",
                lw=0.7,
                label=f"misclassified ({int(wrong.sum())})",
            )
        ax.legend(fontsize=7, markerscale=1.5, loc="best")
    else:  # regression targets
        dots = ax.scatter(*points.T, s=9, c=y, cmap="viridis")
        fig.colorbar(dots, ax=ax, label="target")
    ax.set(title=title, xticks=[], yticks=[])
    return fig
