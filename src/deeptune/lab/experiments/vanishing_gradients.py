"""2. Vanishing gradients: depth x activation."""

import pandas as pd

from deeptune.lab.experiment import Experiment, Sweep
from deeptune.lab.figures import band, figure
from deeptune.lab.report import Report
from deeptune.lab.results import column, completed, step0_ratio
from deeptune.lab.text import geomean, listing, num, seeds_phrase, stats

THRESHOLD = 1e-2  # the gradient-health callback's default vanishing_ratio


def results(jobs: pd.DataFrame) -> pd.DataFrame:
    """One row per job: depth, activation, seed, state, ratio0 (first / last layer's gradient
    norm at step 0), ratio (the same, geometric mean over training), val_acc, test_acc."""
    return pd.DataFrame(
        {
            "depth": column(jobs, "model.depth"),
            "activation": column(jobs, "model.activation"),
            "seed": column(jobs, "seed"),
            "state": column(jobs, "state", "missing"),
            "ratio0": [step0_ratio(p) for p in column(jobs, "path", "")],
            "ratio": column(jobs, "grad_ratio"),
            "val_acc": column(jobs, "val_acc"),
            "test_acc": column(jobs, "test_acc"),
        }
    )


def _ratios(df: pd.DataFrame, depth) -> dict[str, float]:
    at = df[df["depth"] == depth]
    return {a: geomean(g["ratio0"]) for a, g in at.groupby("activation", sort=False)}


def verdict(df: pd.DataFrame, threshold: float = THRESHOLD) -> str:
    ok = df[df["ratio0"].notna()]
    if ok.empty:
        return "No run logged its gradient norms, so this budget shows nothing about them."
    deep, shallow = ok["depth"].max(), ok["depth"].min()
    ratios = _ratios(ok, deep)
    acc = stats(completed(df)[completed(df)["depth"] == deep], "activation", "val_acc")["mean"]
    described = [f"{a} {r:.1e} (val acc {num(acc.get(a))})" for a, r in ratios.items()]
    text = [
        f"At depth {deep}, the first hidden layer's gradient norm at initialisation was, as a "
        f"fraction of the last layer's: {listing(described)}."
    ]
    vanished = [a for a, r in ratios.items() if r < threshold]
    if vanished:
        text.append(
            f"Below the callback's {threshold:g} threshold (vanishing): {listing(vanished)}."
        )
    else:
        text.append(f"No activation fell below the callback's {threshold:g} threshold.")
    sig, relu = ratios.get("sigmoid"), ratios.get("relu")
    if sig is not None and relu is not None:
        if sig < threshold <= relu:
            shallow_sig = _ratios(ok, shallow).get("sigmoid")
            trend = (
                f"collapsed from {num(shallow_sig)} at depth {shallow} to {sig:.1e} at depth {deep}"
                if shallow != deep
                else f"collapsed to {sig:.1e} at depth {deep}"
            )
            text.append(
                f"So the claim shows: the sigmoid stack's ratio {trend}, while relu with He "
                f"init kept {num(relu)}."
            )
        elif sig >= threshold:
            text.append(
                f"The sigmoid ratio did not collapse here ({num(sig)} at depth {deep}): the claim "
                "does not show at this depth."
            )
        else:
            text.append(
                f"relu with He init vanished too ({relu:.1e}): the claim does not show here."
            )
    return " ".join(text)


def analyze(ctx) -> Report:
    df = results(ctx.jobs("main"))
    rep = Report(ctx)
    rep.verdict = verdict(df)
    rep.heading(f"Results over {seeds_phrase(df)}")
    rows = []
    for (act, depth), g in df.groupby(["activation", "depth"], sort=True):
        ok = completed(g)
        rows.append(
            {
                "activation": act,
                "depth": str(depth),
                "n": str(len(g)),
                "ratio at step 0 (geo-mean)": num(geomean(g["ratio0"])),
                "ratio during training (geo-mean)": num(geomean(g["ratio"])),
                "val acc": num(ok["val_acc"].mean())
                + (f" ± {num(ok['val_acc'].std())}" if len(ok) > 1 else ""),
            }
        )
    rep.table(
        pd.DataFrame(rows),
        "The ratio is the first hidden layer's gradient norm over the last layer's (the head); "
        f"below {THRESHOLD:g} the gradient-health callback calls it vanishing.",
    )
    if df["ratio0"].notna().any():
        fig, (left, right) = figure(ncols=2)
        for act, g in df.groupby("activation", sort=False):
            r = g.groupby("depth")["ratio0"].agg(geomean).sort_index()
            left.plot(r.index, r.clip(lower=1e-30), marker="o", label=act)
            s = stats(completed(g), "depth", "val_acc").sort_index()
            band(right, s.index, s["mean"], s["std"], label=act)
        left.axhline(THRESHOLD, color="k", ls=":", lw=1, label="vanishing threshold")
        left.set(
            xlabel="depth",
            ylabel="first / last layer gradient norm",
            yscale="log",
            title="gradient ratio at step 0",
        )
        right.set(xlabel="depth", ylabel="val accuracy (best epoch)", title="accuracy")
        for ax in (left, right):
            ax.legend(fontsize="small")
        rep.figure(fig, "vanishing_gradients.png", "gradient ratio and accuracy against depth")
    return rep


EXPERIMENT = Experiment(
    name="vanishing_gradients",
    title="2. Vanishing gradients: depth x activation",
    summary="depth × activation (sigmoid, tanh, relu, gelu): first/last layer gradient ratio",
    claim=(
        "In deep stacks of saturating activations (sigmoid, to a lesser degree tanh) the gradient "
        "shrinks layer by layer on its way back, so the first layers barely learn; ReLU-family "
        "activations with He initialisation keep the first / last layer gradient ratio near 1."
    ),
    sweeps=(
        Sweep(
            "main",
            "depth x activation x seed",
            budgets={
                "tiny": (
                    "model.depth=4",
                    "model.activation=sigmoid,relu",
                    "seed=0",
                    "trainer.max_epochs=1",
                ),
                "small": ("model.depth=2,8,16", "seed=0,1", "trainer.max_epochs=6"),
                "full": (),
            },
        ),
    ),
    analyze=analyze,
)
