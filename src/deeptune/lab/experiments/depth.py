"""1. Depth: capacity against overfitting."""

import numpy as np
import pandas as pd

from deeptune.lab.experiment import Experiment, Sweep
from deeptune.lab.figures import band, figure
from deeptune.lab.report import Report
from deeptune.lab.results import column, completed, final_metrics
from deeptune.lab.text import mean_std, num, pm, stats


def results(jobs: pd.DataFrame) -> pd.DataFrame:
    """One row per job: depth, seed, state, val_acc / test_acc (the best checkpoint), train_final
    / val_final (accuracy of the final weights, in eval mode), gap = train_final - val_final,
    fit_s."""
    df = pd.DataFrame(
        {
            "depth": column(jobs, "model.depth"),
            "seed": column(jobs, "seed"),
            "state": column(jobs, "state", "missing"),
            "val_acc": column(jobs, "val_acc"),
            "test_acc": column(jobs, "test_acc"),
            "fit_s": column(jobs, "fit_s"),
        }
    )
    final = final_metrics(column(jobs, "path", ""))
    df["train_final"], df["val_final"] = final["train_final"].values, final["val_final"].values
    df["gap"] = df["train_final"] - df["val_final"]
    return df.sort_values(["depth", "seed"], kind="stable").reset_index(drop=True)


def verdict(df: pd.DataFrame) -> str:
    ok = completed(df)
    if ok.empty:
        return "No run completed, so this budget shows nothing about depth."
    acc = stats(ok, "depth", "val_acc").sort_index()
    gap = stats(ok, "depth", "gap").sort_index()
    train = stats(ok, "depth", "train_final").sort_index()
    best, lo, hi = acc["mean"].idxmax(), acc.index.min(), acc.index.max()
    text = [f"Validation accuracy peaked at depth {best} ({pm(*acc.loc[best, ['mean', 'std']])})"]
    if best == hi:
        text[0] += ", the deepest net tried: more depth was still paying off at this budget."
    else:
        drop = acc.loc[best, "mean"] - acc.loc[hi, "mean"]
        noise = max(float(acc["std"].fillna(0).max()), 0.005)
        if drop > 2 * noise:
            text[0] += (
                f"; at depth {hi} it fell to {pm(*acc.loc[hi, ['mean', 'std']])}, "
                f"{num(drop)} lower: beyond depth {best} extra layers cost accuracy."
            )
        else:
            text[0] += (
                f"; depth {hi} was within noise of it ({pm(*acc.loc[hi, ['mean', 'std']])}): "
                "extra layers neither helped nor hurt."
            )
    g_lo, g_hi = gap.loc[lo, "mean"], gap.loc[hi, "mean"]
    if not (np.isfinite(g_lo) and np.isfinite(g_hi)):
        text.append("The train–val gap could not be measured (no per-epoch log).")
    elif g_hi > g_lo + 0.01:
        text.append(
            f"The train–val gap of the final weights grew from {num(g_lo)} at depth {lo} to "
            f"{num(g_hi)} at depth {hi}: the extra capacity went into fitting the training set "
            "better than the validation set (overfitting)."
        )
    elif g_hi < g_lo - 0.01:
        text.append(
            f"The train–val gap shrank from {num(g_lo)} at depth {lo} to {num(g_hi)} at depth "
            f"{hi}, so at this budget the deep nets did not overfit more than the shallow ones."
        )
    else:
        text.append(
            f"The train–val gap stayed about the same ({num(g_lo)} at depth {lo}, {num(g_hi)} at "
            f"depth {hi}): at this budget more depth did not show up as more overfitting."
        )
    t_best, t_hi = train.loc[best, "mean"], train.loc[hi, "mean"]
    if best != hi and np.isfinite(t_hi) and t_hi < t_best - 0.02:
        text.append(
            f"The deepest net also fit its training set worse (train accuracy {num(t_hi)} vs "
            f"{num(t_best)} at depth {best}): harder optimisation, not only overfitting."
        )
    return " ".join(text)


def analyze(ctx) -> Report:
    df = results(ctx.jobs("main"))
    rep = Report.of(ctx, df, verdict)
    columns = {
        "val_acc": "val acc (best epoch)",
        "test_acc": "test acc",
        "train_final": "train acc (final weights)",
        "val_final": "val acc (final weights)",
        "gap": "train − val gap",
        "fit_s": "fit s",
    }
    rep.table(mean_std(completed(df), ["depth"], columns))
    ok = completed(df)
    if not ok.empty:
        fig, (left, right) = figure(ncols=2)
        for name, label in (("val_acc", "val (best epoch)"), ("test_acc", "test")):
            s = stats(ok, "depth", name).sort_index()
            band(left, s.index, s["mean"], s["std"], label=label)
        left.set(xlabel="depth (hidden layers)", ylabel="accuracy", xscale="log", title="accuracy")
        for name, label in (("train_final", "train"), ("val_final", "val")):
            s = stats(ok, "depth", name).sort_index()
            band(right, s.index, s["mean"], s["std"], label=label)
        s = stats(ok, "depth", "gap").sort_index()
        twin = right.twinx()
        twin.plot(s.index, s["mean"], "k--", label="gap")
        twin.set_ylabel("train − val gap")
        right.set(
            xlabel="depth",
            ylabel="accuracy of the final weights",
            xscale="log",
            title="train vs val (final weights)",
        )
        for ax in (left, right):
            ax.set_xticks(
                sorted(ok["depth"].unique()), [str(d) for d in sorted(ok["depth"].unique())]
            )
            ax.legend(fontsize="small", loc="lower left")
        twin.legend(fontsize="small", loc="lower right")
        rep.figure(fig, "depth.png", "accuracy and train-val gap against depth")
    return rep


EXPERIMENT = Experiment(
    name="depth",
    title="1. Depth: capacity against overfitting",
    summary="depth 1…16 at width 128: accuracy and the train–val gap",
    claim=(
        "More hidden layers add capacity: accuracy rises with depth up to a point, beyond which "
        "extra layers mostly widen the gap between training and validation accuracy "
        "(overfitting) or make the net harder to train."
    ),
    sweeps=(
        Sweep(
            "main",
            "depth x seed",
            budgets={
                "tiny": ("model.depth=1,2", "seed=0", "trainer.max_epochs=1"),
                "small": ("model.depth=1,2,4,8,16", "seed=0,1,2", "trainer.max_epochs=15"),
                "full": (),
            },
        ),
    ),
    analyze=analyze,
)
