"""4. Normalisation: none / batch / layer at a normal and a high learning rate; batch norm with
batches of 2."""

import numpy as np
import pandas as pd

from deeptune.lab.experiment import Experiment, Sweep
from deeptune.lab.figures import figure
from deeptune.lab.report import Report
from deeptune.lab.results import column, completed
from deeptune.lab.text import mean_std, num, seeds_phrase

NAMES = {"none": "no normalisation", "batch": "batch norm", "layer": "layer norm"}


def results(jobs: pd.DataFrame) -> pd.DataFrame:
    """One row per job: norm, lr, batch_size, seed, state, val_acc, test_acc."""
    return pd.DataFrame(
        {
            "norm": column(jobs, "model.norm"),
            "lr": column(jobs, "optimizer.lr"),
            "batch_size": column(jobs, "data.batch_size"),
            "seed": column(jobs, "seed"),
            "state": column(jobs, "state", "missing"),
            "val_acc": column(jobs, "val_acc"),
            "test_acc": column(jobs, "test_acc"),
        }
    )


def _outcome(df: pd.DataFrame, chance: float = 0.1) -> str:
    """'0.956' / 'diverged (NaN loss) in 3/3 runs' / 'stuck at 0.104' for one configuration."""
    bad = (~df["state"].eq("completed")).sum()
    ok = completed(df)["val_acc"].dropna()
    if ok.empty:
        return f"diverged (NaN loss) in {bad}/{len(df)} runs"
    text = num(ok.mean())
    if ok.mean() < chance + 0.05:
        text = f"stuck near chance ({text})"
    return text + (f", diverged in {bad}/{len(df)} runs" if bad else "")


def _mean(df: pd.DataFrame) -> float:
    """Mean val accuracy, a diverged run counting as chance-level 0."""
    acc = df["val_acc"].where(df["state"].eq("completed"), 0.0)
    return float(acc.fillna(0.0).mean()) if len(df) else np.nan


def verdict(main: pd.DataFrame, batch: pd.DataFrame | None = None) -> str:
    text = []
    if not main.empty:
        lo, hi = main["lr"].min(), main["lr"].max()
        for lr in sorted(main["lr"].unique(), reverse=True):
            at = main[main["lr"] == lr]
            parts = [f"{NAMES.get(n, n)} {_outcome(g)}" for n, g in at.groupby("norm", sort=False)]
            text.append(f"At lr {lr:g}, val accuracy: {'; '.join(parts)}.")
        at_hi = main[main["lr"] == hi]
        scores = {n: _mean(g) for n, g in at_hi.groupby("norm", sort=False)}
        if "batch" in scores and "none" in scores and hi != lo:
            if scores["batch"] > scores["none"] + 0.05:
                text.append(
                    f"Batch norm made the high rate usable ({num(scores['batch'])} against "
                    f"{num(scores['none'])} without normalisation, diverged runs counted as 0)."
                )
            else:
                text.append(
                    "Batch norm did not make the high rate any better than no normalisation here "
                    f"({num(scores['batch'])} vs {num(scores['none'])})."
                )
    if batch is not None and not batch.empty:
        small, large = batch["batch_size"].min(), batch["batch_size"].max()
        score = {
            (n, b): _mean(g) for (n, b), g in batch.groupby(["norm", "batch_size"], sort=False)
        }
        bn_s, ln_s = score.get(("batch", small)), score.get(("layer", small))
        bn_l, ln_l = score.get(("batch", large)), score.get(("layer", large))
        if None not in (bn_s, ln_s, bn_l, ln_l):
            text.append(
                f"With batches of {small}, batch norm reached {num(bn_s)} against layer norm's "
                f"{num(ln_s)}; with batches of {large}, {num(bn_l)} against {num(ln_l)}."
            )
            if bn_s < ln_s - 0.05 and bn_l >= ln_l - 0.05:
                text.append(
                    "Batch norm's weakness with tiny batches shows: its statistics over "
                    f"{small} samples are too noisy and do not match the running averages used at "
                    "evaluation, while layer norm does not depend on the batch."
                )
            else:
                text.append(
                    f"Batch norm's weakness with batches of {small} does not show at this budget."
                )
    return " ".join(text) or "No run, so nothing to conclude."


def _bars(ax, df: pd.DataFrame, group: str, hue: str, title: str) -> None:
    groups = list(dict.fromkeys(df[group]))
    hues = list(dict.fromkeys(df[hue]))
    width = 0.8 / max(len(hues), 1)
    for j, h in enumerate(hues):
        means, errs, marks = [], [], []
        for g in groups:
            cell = df[(df[group] == g) & (df[hue] == h)]
            ok = completed(cell)["val_acc"].dropna()
            means.append(ok.mean() if len(ok) else 0.0)
            errs.append(ok.std() if len(ok) > 1 else 0.0)
            marks.append(len(ok) < len(cell))
        x = np.arange(len(groups)) + (j - (len(hues) - 1) / 2) * width
        ax.bar(x, means, width, yerr=errs, label=f"{hue} {h}", capsize=2)
        for xi, m, failed in zip(x, means, marks, strict=True):
            if failed:
                ax.text(xi, m + 0.02, "NaN", ha="center", fontsize="x-small", color="C3")
    ax.set_xticks(range(len(groups)), [str(g) for g in groups])
    ax.set(ylim=(0, 1.05), ylabel="val accuracy", xlabel=group, title=title)
    ax.legend(fontsize="x-small")


def analyze(ctx) -> Report:
    main = results(ctx.jobs("main"))
    batch = results(ctx.jobs("batch")) if "batch" in ctx.runs else None
    rep = Report(ctx)
    rep.verdict = verdict(main, batch)
    columns = {"val_acc": "val acc", "test_acc": "test acc"}
    rep.heading(f"Learning rate x normalisation (mean ± std over {seeds_phrase(main)})")
    view = mean_std(main, ["lr", "norm"], columns)
    if len(view):
        bad = main.groupby(["lr", "norm"], sort=False)["state"].agg(
            lambda s: (s != "completed").sum()
        )
        view["diverged"] = [str(v) for v in bad.values]
    rep.table(view, "Runs whose loss became NaN are left out of the means and counted as diverged.")
    if batch is not None:
        rep.heading(f"Batch size x normalisation (mean ± std over {seeds_phrase(batch)})")
        rep.table(mean_std(batch, ["batch_size", "norm"], columns))
    fig, axes = figure(ncols=2 if batch is not None else 1)
    axes = np.atleast_1d(axes)
    if not main.empty:
        _bars(axes[0], main, "lr", "norm", "normalisation at two learning rates")
    if batch is not None and not batch.empty:
        _bars(axes[1], batch, "batch_size", "norm", "batch norm with tiny batches")
    rep.figure(fig, "normalization.png", "val accuracy by normalisation")
    return rep


EXPERIMENT = Experiment(
    name="normalization",
    title="4. Normalisation: batch and layer norm, high learning rates, tiny batches",
    summary="none / batch / layer norm at a normal and a high lr; batch norm with batches of 2",
    claim=(
        "Normalising each layer's pre-activations lets a deep net train at learning rates that "
        "make an unnormalised one diverge; batch norm, unlike layer norm, breaks down with very "
        "small batches, whose statistics are noisy."
    ),
    sweeps=(
        Sweep(
            "main",
            "norm x learning rate x seed",
            budgets={
                "tiny": (
                    "model.norm=none,batch",
                    "optimizer.lr=0.3",
                    "seed=0",
                    "trainer.max_epochs=1",
                ),
                "small": ("seed=0,1", "trainer.max_epochs=8"),
                "full": (),
            },
        ),
        Sweep(
            "batch",
            "norm x batch size (2 vs 128) x seed",
            overrides=(
                "model.norm=batch,layer",
                "data.batch_size=2,128",
                "optimizer.lr=0.01",
                "data.drop_last=true",
            ),
            budgets={
                "tiny": (
                    "model.norm=batch",
                    "data.batch_size=2",
                    "seed=0",
                    "trainer.max_epochs=1",
                    "+data.train_fraction=0.2",
                ),
                "small": ("seed=0,1", "trainer.max_epochs=4"),
                "full": ("trainer.max_epochs=6",),
            },
        ),
    ),
    analyze=analyze,
)
