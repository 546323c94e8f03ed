"""7. Learning rates: too small, good, too large; and the schedules."""

import numpy as np
import pandas as pd

from deeptune.lab.experiment import Experiment, Sweep
from deeptune.lab.figures import band, figure, mean_curves
from deeptune.lab.report import Report
from deeptune.lab.results import column, completed, curves
from deeptune.lab.text import listing, mean_std, num, pm, seeds_phrase, stats


def results(jobs: pd.DataFrame) -> pd.DataFrame:
    """One row per job: lr, scheduler, seed, state, val_acc, test_acc, max_epochs, path."""
    return pd.DataFrame(
        {
            "lr": column(jobs, "optimizer.lr"),
            "scheduler": column(jobs, "scheduler", "none"),
            "seed": column(jobs, "seed"),
            "state": column(jobs, "state", "missing"),
            "val_acc": column(jobs, "val_acc"),
            "test_acc": column(jobs, "test_acc"),
            "max_epochs": column(jobs, "trainer.max_epochs"),
            "path": column(jobs, "path", ""),
        }
    )


def verdict(rates: pd.DataFrame, schedules: pd.DataFrame | None = None) -> str:
    text = []
    if not rates.empty:
        # A diverged run (NaN loss) counts as 0 accuracy: it is the too-large end of the range.
        acc = rates["val_acc"].where(rates["state"].eq("completed"), 0.0).fillna(0.0)
        s = acc.groupby(rates["lr"]).agg(["mean", "std"]).sort_index()
        failed = (~rates["state"].eq("completed")).groupby(rates["lr"]).sum()
        best = s["mean"].idxmax()
        good = s.index[s["mean"] >= s.loc[best, "mean"] - 0.02]
        text.append(
            f"The best learning rate was {best:g} (val accuracy "
            f"{pm(s.loc[best, 'mean'], s.loc[best, 'std'])})"
            + (
                f"; {good.min():g} to {good.max():g} came within 0.02 of it."
                if len(good) > 1
                else "."
            )
        )
        epochs = int(rates["max_epochs"].max())

        def outcome(lr) -> str:
            rows = rates[rates["lr"] == lr]
            done = completed(rows)["val_acc"].dropna()
            bad = len(rows) - len(done)
            if not bad:
                return f"{lr:g} → {num(done.mean())}"
            return f"{lr:g} → NaN loss in {bad}/{len(rows)} runs" + (
                f" ({num(done.mean())} in the other{'s' if len(done) > 1 else ''})"
                if len(done)
                else ""
            )

        small = [lr for lr in s.index if lr < good.min()]
        large = [lr for lr in s.index if lr > good.max()]
        if small:
            text.append(
                f"Too small, after {epochs} epochs: {'; '.join(map(outcome, small))} — steps too "
                "short to get far."
            )
        if large:
            diverged = any(failed.loc[lr] for lr in large)
            text.append(
                f"Too large: {'; '.join(map(outcome, large))} — "
                + (
                    "the steps overshoot, then the loss blows up."
                    if diverged
                    else "the steps overshoot the minimum."
                )
            )
        if not small and not large:
            text.append("Every rate tried was about as good: widen the range to see both ends.")
    if schedules is not None and not completed(schedules).empty:
        ok = completed(schedules)
        s = stats(ok, "scheduler", "val_acc")
        best = s["mean"].idxmax()
        base = s["mean"].get("none")
        noise = max(float(s["std"].fillna(0).max()), 0.005)
        line = f"Among the schedules the best was {best} ({pm(*s.loc[best, ['mean', 'std']])})"
        if base is not None and best != "none":
            gain = s.loc[best, "mean"] - base
            line += f", {num(gain)} above a constant rate ({num(base)})" + (
                " — within the spread over seeds, so not a clear win." if gain <= noise else "."
            )
        elif best == "none":
            line += ": no schedule beat the constant rate at this budget."
        order = s["mean"].sort_values(ascending=False)
        line += f" Ranking: {listing([f'{k} {num(v)}' for k, v in order.items()])}."
        text.append(line)
    return " ".join(text) or "No run, so nothing to conclude."


def analyze(ctx) -> Report:
    rates = results(ctx.jobs("main"))
    schedules = results(ctx.jobs("schedules")) if "schedules" in ctx.runs else None
    rep = Report(ctx)
    rep.verdict = verdict(rates, schedules)
    rep.heading(f"Learning-rate sweep (mean ± std over {seeds_phrase(rates)})")
    view = mean_std(
        rates.sort_values("lr", kind="stable"),
        ["lr"],
        {"val_acc": "val acc", "test_acc": "test acc"},
    )
    if len(view):
        bad = rates.sort_values("lr", kind="stable").groupby("lr", sort=False)["state"]
        view["diverged (NaN)"] = [str((s != "completed").sum()) for _, s in bad]
    rep.table(view, "Momentum SGD; a run whose loss became NaN is counted as diverged.")
    if schedules is not None:
        rep.heading(f"Schedules (mean ± std over {seeds_phrase(schedules)})")
        lr = schedules["lr"].iloc[0] if len(schedules) else float("nan")
        rep.table(
            mean_std(schedules, ["scheduler"], {"val_acc": "val acc", "test_acc": "test acc"}),
            f"Every schedule starts from lr {num(lr, 4)} and steps once per epoch.",
        )
    fig, axes = figure(ncols=3 if schedules is not None else 2, width=4.2)
    axes = np.atleast_1d(axes)
    ok = completed(rates)
    if not rates.empty:
        acc = rates.assign(val=rates["val_acc"].where(rates["state"].eq("completed"), 0.0))
        s = stats(acc, "lr", "val").sort_index()
        axes[0].errorbar(s.index, s["mean"], yerr=s["std"].fillna(0), marker="o", capsize=3)
        bad = rates[~rates["state"].eq("completed")]
        if len(bad):
            axes[0].scatter(
                bad["lr"],
                np.zeros(len(bad)),
                marker="x",
                color="C3",
                label="diverged (NaN)",
                zorder=3,
            )
            axes[0].legend(fontsize="x-small")
        axes[0].set(
            xscale="log",
            xlabel="learning rate",
            ylabel="val accuracy (best epoch)",
            title="too small / good / too large",
        )
        for lr, (x, m, _s) in mean_curves(ok.sort_values("lr"), "lr", "train_loss").items():
            axes[1].plot(x, m, label=f"lr {lr:g}")
        axes[1].set(xlabel="epoch", ylabel="training loss", yscale="log", title="training loss")
        axes[1].legend(fontsize="xx-small", ncol=2)
    if schedules is not None and not completed(schedules).empty:
        first = completed(schedules).groupby("scheduler", sort=False).head(1)
        for _, row in first.iterrows():
            c = curves(row["path"])
            if "lr" in c:
                axes[2].plot(c.index, c["lr"], marker=".", label=row["scheduler"])
        axes[2].set(xlabel="epoch", ylabel="learning rate", title="the schedules")
        axes[2].legend(fontsize="x-small")
    rep.figure(fig, "learning_rate.png", "learning-rate sweep and schedules")
    if schedules is not None and not completed(schedules).empty:
        fig, ax = figure()
        for name, (x, m, s) in mean_curves(completed(schedules), "scheduler", "val_acc").items():
            band(ax, x, m, s, label=name)
        ax.set(
            xlabel="epoch",
            ylabel="val accuracy",
            title="val accuracy per schedule",
            ylim=(max(0.0, completed(schedules)["val_acc"].min() - 0.15), 1.0),
        )
        ax.legend(fontsize="x-small")
        rep.figure(fig, "schedules.png", "val accuracy per schedule")
    return rep


EXPERIMENT = Experiment(
    name="learning_rate",
    title="7. Learning rates and schedules",
    summary="a log-spaced lr sweep (too small / good / too large) and six schedules",
    claim=(
        "The learning rate matters most: too small and training crawls, too large and it "
        "diverges, with a good range in between; a decaying schedule (step, exponential, "
        "cosine, warm-up) can add a little at the end of training over a constant rate."
    ),
    sweeps=(
        Sweep(
            "main",
            "learning rate x seed",
            budgets={
                "tiny": ("optimizer.lr=1e-3,10.0", "seed=0", "trainer.max_epochs=1"),
                "small": (
                    "optimizer.lr=1e-5,1e-4,1e-3,1e-2,0.1,1.0,10.0",
                    "seed=0,1",
                    "trainer.max_epochs=10",
                ),
                "full": (),
            },
        ),
        Sweep(
            "schedules",
            "schedule x seed at lr 0.05",
            overrides=(
                "optimizer.lr=0.05",
                "scheduler=none,step,exponential,two_stage,cosine,warmup",
            ),
            budgets={
                "tiny": ("scheduler=none,cosine", "seed=0", "trainer.max_epochs=2"),
                "small": ("seed=0,1", "trainer.max_epochs=20"),
                "full": (),
            },
        ),
    ),
    analyze=analyze,
)
