"""6. Optimisers: loss curves and epochs to a target validation accuracy."""

import math

import numpy as np
import pandas as pd

from deeptune.lab.experiment import Experiment, Sweep
from deeptune.lab.figures import band, figure, mean_curves
from deeptune.lab.report import Report
from deeptune.lab.results import column, completed, curves
from deeptune.lab.text import listing, mean_pm, num, seeds_phrase


def results(jobs: pd.DataFrame) -> pd.DataFrame:
    """One row per job: optimizer, lr, seed, state, val_acc, test_acc, max_epochs, path and
    `val_curve`, the val accuracy after each epoch."""
    df = pd.DataFrame(
        {
            "optimizer": column(jobs, "optimizer"),
            "lr": column(jobs, "optimizer.lr"),
            "seed": column(jobs, "seed"),
            "state": column(jobs, "state", "missing"),
            "val_acc": column(jobs, "val_acc"),
            "test_acc": column(jobs, "test_acc"),
            "max_epochs": column(jobs, "trainer.max_epochs"),
            "path": column(jobs, "path", ""),
        }
    )
    df["val_curve"] = [
        list(c["val_acc"]) if "val_acc" in (c := curves(p)) else [] for p in df["path"]
    ]
    return df


def target_for(df: pd.DataFrame) -> float:
    """98% of the best optimiser's mean val accuracy, rounded down to 0.01 (0.95 on digits)."""
    best = completed(df).groupby("optimizer")["val_acc"].mean().max()
    return math.floor(0.98 * best * 100) / 100 if np.isfinite(best) else math.nan


def epochs_to(curve: list[float], target: float) -> float:
    """The first epoch (1-based) whose val accuracy reached `target`; inf if none did."""
    for epoch, value in enumerate(curve, start=1):
        if value >= target:
            return float(epoch)
    return math.inf


def verdict(df: pd.DataFrame, target: float | None = None) -> str:
    ok = completed(df)
    if ok.empty:
        return "No run completed, so nothing to conclude."
    target = target_for(df) if target is None else target
    epochs = int(ok["max_epochs"].max())
    ok = ok.assign(to_target=[epochs_to(c, target) for c in ok["val_curve"]])
    speed = {}
    for name, g in ok.groupby("optimizer", sort=False):
        reached = g["to_target"][np.isfinite(g["to_target"])]
        speed[name] = (reached.mean() if len(reached) == len(g) else math.inf, len(reached), len(g))
    order = sorted(speed, key=lambda n: (speed[n][0], -speed[n][1]))
    fast = [f"{n} in {num(speed[n][0], 1)}" for n in order if np.isfinite(speed[n][0])]
    slow = [
        f"{n} (only {speed[n][1]} of its {speed[n][2]} runs did)" if speed[n][1] else n
        for n in order
        if not np.isfinite(speed[n][0])
    ]
    text = [
        f"To reach {target:.2f} val accuracy (98% of the best optimiser's), the optimisers took "
        f"on average {listing(fast) or 'never'} epochs"
    ]
    text[0] += (
        f"; within {epochs} epochs not every run of {listing(slow)} reached it." if slow else "."
    )
    sgd = speed.get("sgd", (None,))[0]
    ahead = [n for n in ("adam", "momentum") if n in speed]
    if sgd is not None and ahead:
        better = [n for n in ahead if speed[n][0] < sgd]
        if len(better) == len(ahead):
            text.append(
                f"{listing([n.capitalize() if n == 'adam' else n for n in ahead])} "
                f"{'were' if len(ahead) > 1 else 'was'} ahead of plain SGD "
                f"({num(sgd, 1) if np.isfinite(sgd) else 'not every run within the budget'}), "
                "as the claim says."
            )
        else:
            behind = [n for n in ahead if n not in better]
            text.append(
                f"{listing(behind)} {'were' if len(behind) > 1 else 'was'} not ahead of "
                "plain SGD here: the claim does not show at this budget."
            )
    best = ok.groupby("optimizer")["val_acc"].mean()
    text.append(
        f"Best val accuracy after {epochs} epochs: {best.idxmax()} "
        f"({num(best.max())}); worst: {best.idxmin()} ({num(best.min())})."
    )
    return " ".join(text)


def analyze(ctx) -> Report:
    frames = [results(ctx.jobs(name)) for name in ctx.runs]
    df = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    if "lbfgs" in ctx.runs and len(df):
        df.loc[df["optimizer"] == "lbfgs", "optimizer"] = "lbfgs (full batch)"
    rep = Report(ctx)
    target = target_for(df) if len(df) else math.nan
    rep.verdict = verdict(df, target)
    ok = completed(df).copy()
    ok["to_target"] = [epochs_to(c, target) for c in ok["val_curve"]]
    rep.heading(f"Results (mean ± std over {seeds_phrase(df)})")
    rows = []
    for name, g in df.groupby("optimizer", sort=False):
        done = ok[ok["optimizer"] == name]
        reached = done["to_target"][np.isfinite(done["to_target"])]
        rows.append(
            {
                "optimizer": name,
                "lr": num(g["lr"].iloc[0], 4),
                "n": str(len(g)),
                f"epochs to {target:.2f}": (
                    (
                        num(reached.mean(), 1)
                        + (f" ± {num(reached.std(), 1)}" if len(reached) > 1 else "")
                    )
                    if len(reached) == len(g)
                    else f"never in {len(g) - len(reached)}/{len(g)} runs"
                ),
                "val acc": mean_pm(done["val_acc"]),
                "test acc": mean_pm(done["test_acc"]),
            }
        )
    note = "Each optimiser at its default learning rate (configs/optimizer/)."
    if "lbfgs" in ctx.runs:
        note += (
            " An L-BFGS epoch is one step on the whole training split, with up to "
            "`optimizer.max_iter` function evaluations and a line search."
        )
    rep.table(pd.DataFrame(rows), note)
    if not ok.empty:
        fig, (left, right) = figure(ncols=2)
        for name, (x, m, s) in mean_curves(ok, "optimizer", "train_loss").items():
            band(left, x, m, s, label=name)
        left.set(xlabel="epoch", ylabel="training loss", yscale="log", title="training loss")
        for name, (x, m, s) in mean_curves(ok, "optimizer", "val_acc").items():
            band(right, x, m, s, label=name)
        right.axhline(target, color="k", ls=":", lw=1, label=f"target {target:.2f}")
        right.set(
            xlabel="epoch",
            ylabel="val accuracy",
            title="validation accuracy",
            ylim=(max(0.0, ok["val_acc"].min() - 0.3), 1.0),
        )
        left.legend(fontsize="x-small")
        right.legend(fontsize="x-small")
        rep.figure(fig, "optimizers.png", "loss and accuracy curves per optimiser")
    return rep


EXPERIMENT = Experiment(
    name="optimizers",
    title="6. Optimisers: how fast each one gets there",
    summary="sgd, momentum, nesterov, adagrad, rmsprop, adam, adamw, lbfgs: epochs to a target",
    claim=(
        "Momentum and adaptive methods (Adam above all) reach a given accuracy in far fewer "
        "epochs than plain SGD; Adagrad's ever-shrinking steps slow it down late in training."
    ),
    sweeps=(
        Sweep(
            "main",
            "optimizer x seed",
            budgets={
                "tiny": ("optimizer=sgd,adam", "seed=0", "trainer.max_epochs=2"),
                "small": ("seed=0,1,2", "trainer.max_epochs=12"),
                "full": (),
            },
        ),
        Sweep(
            "lbfgs",
            "L-BFGS on the whole training split x seed",
            overrides=("optimizer=lbfgs", "data.batch_size=2048"),
            budgets={"tiny": None, "small": ("seed=0,1", "trainer.max_epochs=12"), "full": ()},
        ),
    ),
    analyze=analyze,
)
