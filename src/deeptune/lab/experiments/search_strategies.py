"""9. Search strategies: grid vs random vs Bayesian (TPE) at the same trial budget."""

import numpy as np
import pandas as pd

from deeptune.lab.experiment import Experiment, Sweep
from deeptune.lab.figures import band, figure
from deeptune.lab.report import Report
from deeptune.lab.results import column
from deeptune.lab.text import listing, num, pm

SAMPLERS = ("grid", "random", "tpe")
SEEDS = {"tiny": 1, "small": 5, "full": 10}
# The grid: the log-midpoints of 3 equal bins of each range of the experiment's yaml.
GRID = ("optimizer.lr=choice(0.001,0.1,10.0)", "optimizer.weight_decay=choice(2.2e-6,1e-5,4.6e-5)")
SAMPLER_ARGS = {
    "grid": ("hydra.sweeper.sampler=grid", "~hydra.sweeper.sampler_args.n_startup_trials", *GRID),
    "random": ("hydra.sweeper.sampler=random", "~hydra.sweeper.sampler_args.n_startup_trials"),
    "tpe": (),
}
TINY = ("hydra.sweeper.n_trials=2", "trainer.max_epochs=1")


def _sweeps() -> tuple[Sweep, ...]:
    sweeps = []
    for sampler in SAMPLERS:
        for seed in range(max(SEEDS.values())):
            budgets = {
                b: (() if b != "tiny" else TINY) if seed < n else None for b, n in SEEDS.items()
            }
            sweeps.append(
                Sweep(
                    f"{sampler}_seed{seed}",
                    f"{sampler} search, search seed {seed}",
                    overrides=(*SAMPLER_ARGS[sampler], f"hydra.sweeper.seed={seed}"),
                    budgets=budgets,
                    serial=True,  # trials of a second or two: one process beats two workers
                )
            )
    return tuple(sweeps)


def results(runs: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """One row per trial: sampler, search_seed, trial (its number in the study), lr,
    weight_decay, state, val_acc, best_so_far (failed trials count as 0)."""
    frames = []
    for name, jobs in runs.items():
        if jobs.empty:
            continue
        sampler, _, seed = name.rpartition("_seed")
        df = pd.DataFrame(
            {
                "sampler": sampler,
                "search_seed": int(seed),
                "trial": column(jobs, "job"),
                "lr": column(jobs, "optimizer.lr"),
                "weight_decay": column(jobs, "optimizer.weight_decay"),
                "state": column(jobs, "state", "missing"),
                "val_acc": column(jobs, "val_acc"),
            }
        ).sort_values("trial")
        # A trial whose loss became NaN found nothing: 0 for the running best.
        acc = df["val_acc"].where(df["state"].eq("completed")).fillna(0.0)
        df["best_so_far"] = acc.cummax().to_numpy()
        frames.append(df)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def verdict(df: pd.DataFrame) -> str:
    if df.empty or df["val_acc"].isna().all():
        return "No trial completed, so nothing to conclude."
    studies = df.groupby(["sampler", "search_seed"])
    best = studies["val_acc"].max().groupby("sampler").agg(["mean", "std", "count"])
    distinct = studies["lr"].nunique().groupby("sampler").mean()
    n_trials = int(studies.size().max())
    order = best["mean"].sort_values(ascending=False).index
    found = [f"{s} {pm(best.loc[s, 'mean'], best.loc[s, 'std'])}" for s in order]
    seeds = int(best["count"].max())
    text = [
        f"After {n_trials} trials, the best val accuracy found was {listing(found)} "
        f"(mean ± std over {seeds} search seed{'s' if seeds > 1 else ''})."
    ]
    if "grid" in distinct and "random" in distinct:
        text.append(
            f"Grid search tried {distinct['grid']:.0f} distinct learning rates in its "
            f"{n_trials} trials (the weight decay took the rest), random search "
            f"{distinct['random']:.0f}."
        )
        grid = df[df["sampler"] == "grid"]
        by_lr = grid.groupby("lr")["val_acc"]
        spread_wd = float((by_lr.max() - by_lr.min()).max()) if len(grid) else np.nan
        spread_lr = float(by_lr.mean().max() - by_lr.mean().min()) if len(grid) else np.nan
        if np.isfinite(spread_wd) and np.isfinite(spread_lr) and by_lr.size().max() > 1:
            text.append(
                f"On the grid, changing the weight decay moved val accuracy by at most "
                f"{num(spread_wd)} at a fixed learning rate, changing the learning rate by "
                f"{num(spread_lr)}: one parameter mattered, the other hardly did."
            )
        g, r = best.loc["grid", "mean"], best.loc["random", "mean"]
        if r > g + 0.005:
            text.append(
                "Random search beat grid search, as expected when one parameter is unimportant."
            )
        elif r < g - 0.005:
            text.append(
                "Grid search beat random search here: the claim does not show at this budget."
            )
        else:
            text.append(
                "Random and grid search ended about level: the claim does not show at this budget."
            )
    if "tpe" in best.index and "random" in best.index:
        t, r = best.loc["tpe", "mean"], best.loc["random", "mean"]
        rel = "ahead of" if t > r + 0.005 else ("behind" if t < r - 0.005 else "level with")
        text.append(f"TPE (Bayesian) ended {rel} random search ({num(t)} vs {num(r)}).")
    return " ".join(text)


def analyze(ctx) -> Report:
    df = results({name: ctx.jobs(name) for name in ctx.runs})
    rep = Report(ctx)
    rep.verdict = verdict(df)
    rep.heading("Best val accuracy found, per search")
    if not df.empty:
        studies = df.groupby(["sampler", "search_seed"], sort=False)
        table = pd.DataFrame(
            {
                "trials": studies.size(),
                "failed": studies["state"].agg(lambda s: int((s != "completed").sum())),
                "distinct lr": studies["lr"].nunique(),
                "best val acc": studies["val_acc"].max().map(num),
                "its lr": [_best_lr(g) for _, g in studies],
            }
        ).reset_index()
        rep.table(
            table.astype(str),
            "Each row is one Optuna study (its own sweep folder); a "
            "failed trial is one whose loss became NaN.",
        )
        fig, (left, right) = figure(ncols=2)
        for sampler, g in df.groupby("sampler", sort=False):
            curves = g.pivot_table(index="trial", columns="search_seed", values="best_so_far")
            band(left, curves.index, curves.mean(axis=1), curves.std(axis=1), label=sampler)
            right.scatter(g["lr"], g["val_acc"].fillna(0), alpha=0.6, s=18, label=sampler)
        left.set(
            xlabel="trial", ylabel="best val accuracy so far", title="best so far (mean ± std)"
        )
        right.set(
            xscale="log",
            xlabel="learning rate",
            ylabel="val accuracy (NaN runs at 0)",
            title="every trial",
        )
        left.legend(fontsize="small")
        right.legend(fontsize="small")
        rep.figure(fig, "search_strategies.png", "best-so-far curves and every trial")
    return rep


def _best_lr(g: pd.DataFrame) -> str:
    acc = g["val_acc"]
    return num(g.loc[acc.idxmax(), "lr"], 4) if acc.notna().any() else "n/a"


EXPERIMENT = Experiment(
    name="search_strategies",
    title="9. Search strategies: grid, random and Bayesian search",
    summary="grid vs random vs TPE search, same space and budget, over search seeds",
    claim=(
        "At the same number of trials, random search beats grid search when some parameters "
        "matter little (Bergstra & Bengio, 2012): a grid spends its trials repeating the same few "
        "values of the parameter that matters. Bayesian search (TPE) spends later trials near the "
        "best ones found so far."
    ),
    sweeps=_sweeps(),
    analyze=analyze,
)
