"""13. Residual connections: depth in a plain and in a residual CNN."""

import numpy as np
import pandas as pd

from deeptune.lab.experiment import Experiment, Sweep
from deeptune.lab.figures import band, figure
from deeptune.lab.report import Report
from deeptune.lab.results import column, completed, last_epoch, step0_ratio
from deeptune.lab.text import geomean, mean_std, num, pm, stats

THRESHOLD = 1e-2  # the gradient-health callback's default vanishing_ratio
NOISE_FLOOR = 0.01  # accuracy differences below 2 x max(this, the spread over seeds) are noise
NORMS = ("none", "batch", "layer", "group")  # the CNN's model.norm choices, in the table's order
NETS = ("plain", "residual")
NORM_TEXT = {
    "none": "Without normalisation",
    "batch": "With batch norm",
    "layer": "With layer norm",
    "group": "With group norm",
}


def results(jobs: pd.DataFrame) -> pd.DataFrame:
    """One row per job: norm, net (plain / residual), depth, seed, state, test_acc / val_acc (the
    best checkpoint), train_acc (the last epoch's running training accuracy), ratio0 (first
    block's gradient norm / the head's at step 0, as the gradient-health callback logs it),
    ratio (the same, geometric mean over training), fit_s."""
    # A swept key holds its override's text ("false"), an unswept one the config's bool.
    residual = column(jobs, "model.residual", False).map(lambda v: str(v).lower() == "true")
    df = pd.DataFrame(
        {
            "norm": column(jobs, "model.norm", "none"),
            "net": np.where(residual, "residual", "plain"),
            "depth": column(jobs, "model.depth"),
            "seed": column(jobs, "seed"),
            "state": column(jobs, "state", "missing"),
            "test_acc": column(jobs, "test_acc"),
            "val_acc": column(jobs, "val_acc"),
            "train_acc": last_epoch(column(jobs, "path", ""), "train_acc"),
            "ratio0": [step0_ratio(p) for p in column(jobs, "path", "")],
            "ratio": column(jobs, "grad_ratio"),
            "fit_s": column(jobs, "fit_s"),
        }
    )
    return df.sort_values(
        ["norm", "net", "depth", "seed"],
        key=lambda c: c.map(_norm_order) if c.name == "norm" else c,
        kind="stable",
    ).reset_index(drop=True)


def _norm_order(norm) -> int:
    return NORMS.index(norm) if norm in NORMS else len(NORMS)


def _cells(shallow, deep) -> list[tuple[str, int]]:
    return [(net, d) for net in NETS for d in (shallow, deep)]


def _accuracy(ok: pd.DataFrame, shallow, deep) -> tuple[str, bool | None]:
    """The accuracy half of the claim for one norm: its sentence, and whether it shows (None:
    a net without a completed run at one of the depths)."""
    acc = stats(ok, ["net", "depth"], "test_acc")
    missing = [c for c in _cells(shallow, deep) if c not in acc.index or acc.loc[c, "n"] == 0]
    if missing:
        which = ", ".join(f"{net} at depth {d}" for net, d in missing)
        return f"no run completed for {which}, so the accuracy half cannot be judged.", None
    mean, std = acc["mean"], acc["std"]
    noise = max(float(std.loc[_cells(shallow, deep)].fillna(0).max()), NOISE_FLOOR)
    drop = {net: mean[(net, shallow)] - mean[(net, deep)] for net in NETS}

    def span(net):
        return " → ".join(pm(mean[(net, d)], std[(net, d)]) for d in (shallow, deep))

    text = (
        f"test accuracy from depth {shallow} to {deep} went {span('plain')} for plain nets and "
        f"{span('residual')} for residual ones"
    )
    plain_falls, residual_holds = drop["plain"] > 2 * noise, drop["residual"] <= 2 * noise
    if plain_falls and residual_holds:
        text += (
            f": the plain nets lost {num(drop['plain'])} while the residual ones held (they "
            f"changed by {round(-drop['residual'], 3) + 0.0:+.3f}, within {num(2 * noise)}, "
            "twice the largest spread over seeds)"
        )
        train = stats(ok, ["net", "depth"], "train_acc")["mean"] if "train_acc" in ok else {}
        t_lo, t_hi = (train.get(("plain", d), np.nan) for d in (shallow, deep))
        if np.isfinite(t_lo) and np.isfinite(t_hi) and t_hi < t_lo - 2 * noise:
            text += (
                f"; the deep plain nets fit their training set worse too (train accuracy "
                f"{num(t_lo)} → {num(t_hi)}): harder to optimise, not overfitting"
            )
        return text + ".", True
    if not plain_falls:
        text += (
            f": the plain nets did not lose more than the noise ({num(2 * noise)}; they changed "
            f"by {round(-drop['plain'], 3) + 0.0:+.3f}), so this half of the claim does not show."
        )
    elif drop["residual"] < drop["plain"] / 2:
        text += (
            f": the residual nets lost accuracy too, though less ({num(drop['residual'])} "
            f"against {num(drop['plain'])}), so they did not hold it."
        )
    else:
        text += (
            f": the residual nets lost about as much ({num(drop['residual'])} against "
            f"{num(drop['plain'])}), so this half of the claim does not show."
        )
    return text, False


def _gradients(group: pd.DataFrame, shallow, deep, threshold: float) -> tuple[str, bool | None]:
    """The gradient half of the claim for one norm: its sentence, and whether it shows (None:
    a net that logged no gradient norms at one of the depths)."""
    ratio = {key: geomean(g["ratio0"]) for key, g in group.groupby(["net", "depth"])}
    if any(not np.isfinite(ratio.get(c, np.nan)) for c in _cells(shallow, deep)):
        return "Not every net logged its gradient norms at both depths.", None
    p_lo, p_hi, r_lo, r_hi = (ratio[c] for c in _cells(shallow, deep))
    text = (
        "The first block's gradient norm at step 0, as a fraction of the head's, went "
        f"{num(p_lo)} → {num(p_hi)} in plain nets and {num(r_lo)} → {num(r_hi)} in residual ones"
    )
    if p_hi < threshold <= r_hi:
        return text + (
            f": it fell below the callback's {threshold:g} threshold (vanishing) without "
            "shortcuts and not with them."
        ), True
    if p_hi >= threshold:
        return text + (
            f": the plain nets' ratio stayed above the callback's {threshold:g} threshold, so "
            "their gradients did not vanish and this half of the claim does not show."
        ), False
    return text + (
        f": the residual nets' ratio fell below the callback's {threshold:g} threshold too, so "
        "this half of the claim does not show."
    ), False


def verdict(df: pd.DataFrame, threshold: float = THRESHOLD) -> str:
    ok = completed(df)
    if ok.empty:
        return "No run completed, so this budget shows nothing about depth and residual nets."
    shallow, deep = ok["depth"].min(), ok["depth"].max()
    if shallow == deep:
        return f"Every completed run had depth {deep}: a trend with depth needs two depths."
    text, outcomes = [], []
    for norm in sorted(ok["norm"].unique(), key=_norm_order):
        label = NORM_TEXT.get(norm, f"With model.norm={norm}")
        acc_text, acc_shown = _accuracy(ok[ok["norm"] == norm], shallow, deep)
        grad_text, grad_shown = _gradients(df[df["norm"] == norm], shallow, deep, threshold)
        text += [f"{label}, {acc_text}", grad_text]
        if acc_shown and grad_shown:
            outcome = "the claim shows in full"
        elif acc_shown or grad_shown:
            outcome = f"only its {'accuracy' if acc_shown else 'gradient'} half shows"
        else:
            outcome = "the claim does not show"
        outcomes.append(f"{label[0].lower()}{label[1:]} {outcome}")
    text.append(f"So, {'; '.join(outcomes)}.")
    return " ".join(text)


def analyze(ctx) -> Report:
    df = results(ctx.jobs("main"))
    rep = Report.of(ctx, df, verdict)
    ok = completed(df)
    columns = {
        "test_acc": "test acc",
        "val_acc": "val acc (best epoch)",
        "train_acc": "train acc (last epoch)",
        "fit_s": "fit s",
    }
    view = mean_std(ok, ["norm", "net", "depth"], columns)
    if not view.empty:
        groups = ok.groupby(["norm", "net", "depth"], sort=False)
        at = list(view.columns).index("fit s")
        for i, (name, label) in enumerate((("ratio0", "at step 0"), ("ratio", "during training"))):
            values = [num(geomean(g[name])) for _, g in groups]
            view.insert(at + i, f"ratio {label} (geo-mean)", values)
    rep.table(
        view,
        "The ratio is the first convolutional block's gradient norm over the head's (the "
        f"gradient-health callback's first / last layer ratio); below {THRESHOLD:g} the callback "
        "calls it vanishing.",
    )
    if not ok.empty:
        fig, (left, right) = figure(ncols=2)
        styles = {"none": "-", "batch": "--", "layer": ":", "group": "-."}
        colours = {"plain": "C3", "residual": "C0"}
        for (norm, net), g in ok.groupby(["norm", "net"], sort=False):
            label, style = f"{net}, norm={norm}", styles.get(norm, "-")
            s = stats(g, "depth", "test_acc").sort_index()
            band(left, s.index, s["mean"], s["std"], label=label, ls=style, color=colours[net])
            r = g.groupby("depth")["ratio0"].agg(geomean).sort_index()
            right.plot(
                r.index,
                r.clip(lower=1e-30),
                marker="o",
                ms=3,
                ls=style,
                color=colours[net],
                label=label,
            )
        right.axhline(THRESHOLD, color="k", ls=":", lw=1, label="vanishing threshold")
        left.set(xlabel="depth (convolutional blocks)", ylabel="test accuracy", title="accuracy")
        right.set(
            xlabel="depth (convolutional blocks)",
            ylabel="first block / head gradient norm",
            yscale="log",
            title="gradient ratio at step 0",
        )
        depths = sorted(ok["depth"].unique())
        for ax in (left, right):
            ax.set_xscale("log")
            ax.set_xticks(depths, [str(d) for d in depths])
            ax.set_xticks([], minor=True)
            ax.legend(fontsize="small")
        rep.figure(fig, "residual.png", "test accuracy and gradient ratio against depth")
    return rep


EXPERIMENT = Experiment(
    name="residual",
    title="13. Residual connections: depth in a plain and a residual CNN",
    summary="plain vs residual CNN at depth 2…24 (digits_images): accuracy, gradient ratio",
    claim=(
        "Stacking more plain layers makes a net harder to train: its accuracy falls with depth "
        "and the gradient reaching the first layers shrinks towards nothing; residual "
        "connections (identity shortcuts around each block, as in ResNet) carry the gradient "
        "past the blocks, so residual nets keep their accuracy as they get deeper."
    ),
    sweeps=(
        Sweep(
            "main",
            "norm x plain/residual x depth x seed",
            budgets={
                "tiny": (
                    "model.depth=1,3",
                    "model.norm=none",
                    "model.width=8",
                    "seed=0",
                    "trainer.max_epochs=1",
                ),
                "small": (
                    "model.depth=2,6,12",
                    "model.width=16",
                    "seed=0,1",
                    "trainer.max_epochs=10",
                ),
                "full": (),
            },
        ),
    ),
    analyze=analyze,
)
