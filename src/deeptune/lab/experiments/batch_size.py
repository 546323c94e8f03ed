"""8. Batch size, with and without the linear learning-rate scaling rule."""

import numpy as np
import pandas as pd

from deeptune.lab.experiment import Experiment, Sweep
from deeptune.lab.figures import figure
from deeptune.lab.report import Report
from deeptune.lab.results import column, completed
from deeptune.lab.text import mean_std, num, stats


def results(jobs: pd.DataFrame) -> pd.DataFrame:
    """One row per job: batch_size, scaling (none / linear), lr (the rate actually used), seed,
    state, val_acc, test_acc, epochs, epoch_s (seconds per epoch in trainer.fit)."""
    base_lr, base_bs = column(jobs, "optimizer.lr"), column(jobs, "optimizer.base_batch_size")
    bs, scaling = column(jobs, "data.batch_size"), column(jobs, "optimizer.lr_scaling", "none")
    df = pd.DataFrame(
        {
            "batch_size": bs,
            "scaling": scaling,
            "lr": np.where(scaling == "linear", base_lr * bs / base_bs, base_lr),
            "seed": column(jobs, "seed"),
            "state": column(jobs, "state", "missing"),
            "val_acc": column(jobs, "val_acc"),
            "test_acc": column(jobs, "test_acc"),
            "epochs": column(jobs, "epochs"),
        }
    )
    df["epoch_s"] = column(jobs, "fit_s") / df["epochs"].replace(0, np.nan)
    return df


def verdict(df: pd.DataFrame) -> str:
    ok = completed(df)
    if ok.empty:
        return "No run completed, so nothing to conclude."
    small, large = ok["batch_size"].min(), ok["batch_size"].max()
    acc = stats(ok, ["scaling", "batch_size"], "val_acc")["mean"]
    lr = ok.groupby(["scaling", "batch_size"])["lr"].first()
    epochs = int(ok["epochs"].max())
    text = []
    plain_s, plain_l = acc.get(("none", small)), acc.get(("none", large))
    if plain_s is not None and plain_l is not None and small != large:
        change = (
            "fell"
            if plain_l < plain_s - 0.01
            else ("rose" if plain_l > plain_s + 0.01 else "stayed")
        )
        text.append(
            f"At a fixed learning rate ({num(lr.get(('none', small)), 4)}) and {epochs} epochs, "
            f"val accuracy {change} from {num(plain_s)} at batch {small} to {num(plain_l)} at "
            f"batch {large}, which takes {large // small}x fewer steps per epoch."
        )
    scaled_l = acc.get(("linear", large))
    if scaled_l is not None and plain_l is not None:
        line = (
            f"The linear scaling rule (lr {num(lr.get(('linear', large)), 3)} at batch {large}) "
            f"gave {num(scaled_l)}"
        )
        if scaled_l > plain_l + 0.01:
            line += f", recovering {num(scaled_l - plain_l)} of the large batch's loss."
        elif scaled_l < plain_l - 0.01:
            line += f", worse than the unscaled {num(plain_l)}: the scaled rate is too large here."
        else:
            line += f", about the same as unscaled ({num(plain_l)})."
        text.append(line)
    t = stats(ok, "batch_size", "epoch_s")["mean"]
    if small in t and large in t and np.isfinite(t[small]) and np.isfinite(t[large]):
        text.append(
            f"An epoch took {num(t[small], 2)} s at batch {small} and {num(t[large], 2)} s at "
            f"batch {large} ({t[small] / t[large]:.1f}x faster per epoch)."
        )
    best = acc.idxmax()
    text.append(
        f"The best val accuracy was at batch {best[1]} "
        f"({'linear lr scaling' if best[0] == 'linear' else 'no lr scaling'}): {num(acc.max())}."
    )
    return " ".join(text)


def analyze(ctx) -> Report:
    df = results(ctx.jobs("main"))
    rep = Report.of(ctx, df, verdict)
    view = mean_std(
        df.sort_values(["scaling", "batch_size"], kind="stable"),
        ["scaling", "batch_size"],
        {"lr": "lr used", "val_acc": "val acc", "test_acc": "test acc", "epoch_s": "s / epoch"},
        digits=3,
    )
    rep.table(view, "Momentum SGD; `linear`: lr = base lr x batch size / base batch size.")
    ok = completed(df)
    if not ok.empty:
        fig, (left, right) = figure(ncols=2)
        for scaling, g in ok.groupby("scaling", sort=False):
            s = stats(g, "batch_size", "val_acc").sort_index()
            left.errorbar(
                s.index,
                s["mean"],
                yerr=s["std"].fillna(0),
                marker="o",
                capsize=3,
                label=f"lr scaling: {scaling}",
            )
        left.set(
            xscale="log",
            xlabel="batch size",
            ylabel="val accuracy (best epoch)",
            title="accuracy after a fixed number of epochs",
        )
        left.legend(fontsize="small")
        s = stats(ok, "batch_size", "epoch_s").sort_index()
        right.errorbar(s.index, s["mean"], yerr=s["std"].fillna(0), marker="o", capsize=3)
        right.set(
            xscale="log",
            yscale="log",
            xlabel="batch size",
            ylabel="seconds per epoch",
            title="time per epoch",
        )
        for ax in (left, right):
            sizes = sorted(ok["batch_size"].unique())
            ax.set_xticks(sizes, [str(b) for b in sizes])
            ax.minorticks_off()
        rep.figure(fig, "batch_size.png", "accuracy and time per epoch against batch size")
    return rep


EXPERIMENT = Experiment(
    name="batch_size",
    title="8. Batch size and the linear scaling rule",
    summary="batch 8…1024 with and without the linear lr scaling rule: accuracy, time per epoch",
    claim=(
        "Larger batches make each epoch faster but take fewer steps, so at a fixed learning rate "
        "and epoch budget they end less trained; scaling the learning rate with the batch size "
        "(the linear scaling rule) recovers much of the difference."
    ),
    sweeps=(
        Sweep(
            "main",
            "batch size x lr scaling x seed",
            budgets={
                "tiny": (
                    "data.batch_size=32,512",
                    "optimizer.lr_scaling=linear",
                    "seed=0",
                    "trainer.max_epochs=1",
                ),
                "small": ("data.batch_size=8,32,128,512,1024", "seed=0,1", "trainer.max_epochs=8"),
                "full": (),
            },
        ),
    ),
    analyze=analyze,
)
