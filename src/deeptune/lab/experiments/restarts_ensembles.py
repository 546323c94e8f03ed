"""10. Restarts and ensembles: the spread of single models against their ensemble."""

import numpy as np
import pandas as pd

from deeptune.lab.experiment import Experiment, Sweep
from deeptune.lab.figures import figure
from deeptune.lab.report import Report
from deeptune.lab.results import completed
from deeptune.lab.text import listing, num, plural


def results(jobs: pd.DataFrame, split: str = "test") -> pd.DataFrame:
    """One row per restart group (a job): epochs, n (restarts), runs (each seed's accuracy on
    `split`), single_mean / single_std / single_min / single_max, ensemble (its accuracy),
    method."""
    rows = []
    for _, job in completed(jobs).iterrows():
        m = job["metrics"]
        spread = ((m.get("restarts") or {}).get(split) or {}).get("acc")
        if not spread:
            continue
        ens = m.get("ensemble") or {}
        rows.append(
            {
                "epochs": job.get("trainer.max_epochs"),
                "n": len(spread["runs"]),
                "runs": spread["runs"],
                "single_mean": spread["mean"],
                "single_std": spread["std"],
                "single_min": spread["min"],
                "single_max": spread["max"],
                "ensemble": (ens.get(split) or {}).get("acc", np.nan),
                "method": ens.get("method", "none"),
            }
        )
    df = pd.DataFrame(rows)
    return df.sort_values("epochs").reset_index(drop=True) if len(df) else df


def verdict(df: pd.DataFrame) -> str:
    df = df[df["ensemble"].notna()] if len(df) else df
    if df.empty:
        return "No restart group with an ensemble completed, so nothing to conclude."
    n = int(df["n"].max())
    parts, misses = [], []
    for _, r in df.iterrows():
        parts.append(
            f"{plural(int(r['epochs']), 'epoch')}: ensemble {num(r['ensemble'])} vs "
            f"{num(r['single_mean'])} ± {num(r['single_std'])} (best single {num(r['single_max'])})"
        )
        if r["ensemble"] < r["single_mean"]:
            misses.append(
                f"at {plural(int(r['epochs']), 'epoch')} the ensemble ({num(r['ensemble'])}) did "
                f"not beat the mean single model ({num(r['single_mean'])})"
            )
    beat = int((df["ensemble"] >= df["single_mean"]).sum())
    text = [
        f"The {df['method'].iloc[0]} ensemble of {n} restarts scored at least the mean single "
        f"model's test accuracy at {beat} of {len(df)} training budgets — {'; '.join(parts)}."
    ]
    if misses:
        text.append(f"Not everywhere: {listing(misses)}.")
    above_best = int((df["ensemble"] > df["single_max"]).sum())
    text.append(f"It beat even the best single model at {above_best} of {len(df)}.")
    spread = df["single_max"] - df["single_min"]
    if len(df) > 1:
        text.append(
            f"Single models spread over {num(spread.iloc[0])} (min to max) at "
            f"{plural(int(df['epochs'].iloc[0]), 'epoch')} and {num(spread.iloc[-1])} at "
            f"{plural(int(df['epochs'].iloc[-1]), 'epoch')}."
        )
    return " ".join(text)


def analyze(ctx) -> Report:
    df = results(ctx.jobs("main"))
    rep = Report(ctx)
    rep.verdict = verdict(df)
    rep.heading("Test accuracy: single models (restarts) against their ensemble")
    if len(df):
        view = pd.DataFrame(
            {
                "epochs": df["epochs"].map(str),
                "restarts": df["n"].map(str),
                "single: mean ± std": [
                    f"{num(m)} ± {num(s)}"
                    for m, s in zip(df["single_mean"], df["single_std"], strict=True)
                ],
                "single: min – max": [
                    f"{num(a)} – {num(b)}"
                    for a, b in zip(df["single_min"], df["single_max"], strict=True)
                ],
                "ensemble": df["ensemble"].map(num),
                "ensemble − mean": (df["ensemble"] - df["single_mean"]).map(lambda v: f"{v:+.3f}"),
            }
        )
        rep.table(view, f"Ensemble: `{df['method'].iloc[0]}` of the restarts' best checkpoints.")
        fig, ax = figure()
        x = np.arange(len(df))
        jitter = np.random.default_rng(0)
        for i, r in df.iterrows():
            ax.scatter(
                i + jitter.uniform(-0.12, 0.12, len(r["runs"])),
                r["runs"],
                alpha=0.6,
                color="C0",
                s=16,
                label="single model" if i == 0 else None,
            )
            ax.hlines(
                r["single_mean"],
                i - 0.25,
                i + 0.25,
                color="C0",
                label="mean single" if i == 0 else None,
            )
        ax.scatter(x, df["ensemble"], marker="*", s=140, color="C3", zorder=3, label="ensemble")
        ax.set_xticks(x, [str(int(e)) for e in df["epochs"]])
        ax.set(xlabel="epochs per model", ylabel="test accuracy", title="restarts vs ensemble")
        ax.legend(fontsize="small")
        rep.figure(fig, "restarts_ensembles.png", "single models against their ensemble")
    return rep


EXPERIMENT = Experiment(
    name="restarts_ensembles",
    title="10. Restarts and ensembles",
    summary="N restarts: spread of single models vs their ensemble, at several epoch budgets",
    claim=(
        "Models trained from different random seeds differ; averaging their predicted "
        "probabilities (an ensemble) scores at least as well as the average single model, and "
        "often better than the best one."
    ),
    sweeps=(
        Sweep(
            "main",
            "epochs per model, each a group of restarts and their ensemble",
            budgets={
                "tiny": ("restarts=2", "trainer.max_epochs=1"),
                "small": ("restarts=5", "trainer.max_epochs=2,5,15"),
                "full": (),
            },
        ),
    ),
    analyze=analyze,
)
