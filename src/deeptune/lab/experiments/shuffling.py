"""12. Shuffling a label-sorted training set."""

import numpy as np
import pandas as pd

from deeptune.lab.experiment import Experiment, Sweep
from deeptune.lab.figures import band, figure, mean_curves
from deeptune.lab.report import Report
from deeptune.lab.results import column, completed, last_epoch
from deeptune.lab.text import listing, mean_std, num, pm, stats


def results(jobs: pd.DataFrame) -> pd.DataFrame:
    """One row per job: optimizer, shuffle ('true' / 'false'), seed, state, val_acc / test_acc
    (best checkpoint), val_final (last epoch), path."""
    df = pd.DataFrame(
        {
            "optimizer": column(jobs, "optimizer", ""),
            "shuffle": column(jobs, "data.shuffle").map(lambda v: str(v).lower()),
            "seed": column(jobs, "seed"),
            "state": column(jobs, "state", "missing"),
            "val_acc": column(jobs, "val_acc"),
            "test_acc": column(jobs, "test_acc"),
            "path": column(jobs, "path", ""),
        }
    )
    df["val_final"] = last_epoch(df["path"], "val_acc")
    return df


def verdict(df: pd.DataFrame) -> str:
    ok = completed(df)
    if "optimizer" not in ok:
        ok = ok.assign(optimizer="")
    parts, drops = [], {}
    for opt, g in ok.groupby("optimizer", sort=False):
        best, final = stats(g, "shuffle", "val_acc"), stats(g, "shuffle", "val_final")
        if not {"true", "false"} <= set(best.index):
            continue
        on, off = best.loc["true"], best.loc["false"]
        parts.append(
            f"{'with ' + opt + ', ' if opt else ''}reshuffled every epoch "
            f"{pm(on['mean'], on['std'])} (last epoch {num(final.loc['true', 'mean'])}), read "
            f"in sorted order {pm(off['mean'], off['std'])} (last epoch "
            f"{num(final.loc['false', 'mean'])})"
        )
        drops[opt] = max(
            on["mean"] - off["mean"], final.loc["true", "mean"] - final.loc["false", "mean"]
        )
    if not parts:
        return "Both settings are needed (data.shuffle=true,false) to compare them."
    text = [f"Best val accuracy {'; '.join(parts)}."]
    shown = {o: d for o, d in drops.items() if d > 0.02}
    if shown:
        cost = listing([f"{num(d)}{' with ' + o if o else ''}" for o, d in shown.items()])
        text.append(
            f"Reading the label-sorted set in the same order every epoch cost accuracy: {cost} "
            "(the larger of the best-epoch and last-epoch differences). Each epoch ends on a run "
            "of batches of the last classes, which the net then fits at the expense of the others."
        )
        if rest := [o for o in drops if o not in shown]:
            text.append(f"With {listing(rest)} the order made no clear difference.")
    else:
        text.append("At this budget the order made no clear difference: the claim does not show.")
    return " ".join(text)


def analyze(ctx) -> Report:
    df = results(ctx.jobs("main"))
    rep = Report.of(ctx, df, verdict)
    rep.table(
        mean_std(
            df,
            ["optimizer", "shuffle"],
            {
                "val_acc": "val acc (best epoch)",
                "val_final": "val acc (last epoch)",
                "test_acc": "test acc",
            },
        ),
        "The training split is sorted by label (`data.sort_by_label=true`).",
    )
    ok = completed(df)
    if not ok.empty:
        optimizers = list(dict.fromkeys(ok["optimizer"]))
        fig, axes = figure(ncols=len(optimizers), width=4.5)
        for ax, opt in zip(np.atleast_1d(axes), optimizers, strict=True):
            rows = ok[ok["optimizer"] == opt]
            for key, (x, m, s) in mean_curves(rows, "shuffle", "val_acc").items():
                band(ax, x, m, s, label=f"shuffle={key}")
            ax.set(
                xlabel="epoch",
                ylabel="val accuracy",
                title=opt or "validation accuracy",
                ylim=(0, 1),
            )
            ax.legend(fontsize="small")
        rep.figure(fig, "shuffling.png", "validation accuracy with and without shuffling")
    return rep


EXPERIMENT = Experiment(
    name="shuffling",
    title="12. Shuffling the training set every epoch",
    summary="per-epoch shuffling on vs off on a label-sorted training set",
    claim=(
        "Stochastic gradient descent assumes each batch is a random sample; reading a training "
        "set sorted by label in order makes every epoch end on the last classes, and the net "
        "forgets the others. Reshuffling every epoch avoids it."
    ),
    sweeps=(
        Sweep(
            "main",
            "optimizer x shuffle x seed",
            budgets={
                "tiny": ("optimizer=momentum", "seed=0", "trainer.max_epochs=1"),
                "small": ("seed=0,1,2", "trainer.max_epochs=10"),
                "full": (),
            },
        ),
    ),
    analyze=analyze,
)
