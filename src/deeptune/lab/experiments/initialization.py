"""3. Initialisation: the scale of activations and gradients at step 0, and what it leads to."""

import math
import re
from pathlib import Path

import numpy as np
import pandas as pd

from deeptune.errors import ConfigError
from deeptune.lab.experiment import Experiment, Sweep
from deeptune.lab.figures import figure
from deeptune.lab.report import Report
from deeptune.lab.results import completed, step0_grad_norms
from deeptune.lab.text import listing, mean_pm, num, seeds_phrase, stats

INITS = {
    "zeros": "zeros",
    "normal": "N(0, 1)",
    "scaled_normal": "N(0, 1/n) (LeCun)",
    "xavier_normal": "Xavier / Glorot",
    "kaiming_normal": "He / Kaiming",
}


def activation_scales(job: str | Path, samples: int = 512) -> dict[str, float]:
    """The std of each hidden block's output at initialisation, on the job's first training
    samples: the job rebuilt by deeptune.run.saved without a checkpoint, seeded as train.py
    seeds it, so the weights are the ones the job started from. {} if it cannot be rebuilt."""
    if not (Path(job) / "config.yaml").is_file():
        return {}
    import torch

    from deeptune.run.saved import load_run

    torch.set_num_threads(1)
    try:
        run = load_run(job)
    except ConfigError:  # a folder whose config deeptune does not trust: say so
        raise
    except Exception:  # a model or data set the lab does not know how to rebuild
        return {}
    net, dm = run.model.net, run.datamodule
    blocks = {n: m for n, m in net.named_modules() if re.fullmatch(r"hidden\.\d+", n)}
    out: dict[str, float] = {}
    hooks = [
        m.register_forward_hook(
            lambda _m, _i, y, name=n: out.__setitem__(name, y.float().std().item())
        )
        for n, m in blocks.items()
    ]
    with torch.no_grad():
        net(dm.tensors["train"][0][:samples])
    for hook in hooks:
        hook.remove()
    return out


def results(jobs: pd.DataFrame) -> pd.DataFrame:
    """One row per job: init, activation, seed, state, val_acc, test_acc, act_first / act_last
    (std of the first / last hidden layer's output at step 0), grad_first / grad_last (their
    gradient norms at step 0), and per-layer lists `acts` and `grads`."""
    rows = []
    for _, job in jobs.iterrows():
        acts = activation_scales(job["path"]) if job.get("seed") == jobs["seed"].min() else {}
        grads = step0_grad_norms(job["path"])
        hidden = [v for k, v in grads.items() if k.startswith("hidden")]
        rows.append(
            {
                "init": job.get("model.init"),
                "activation": job.get("model.activation"),
                "seed": job.get("seed"),
                "state": job.get("state", "missing"),
                "val_acc": job.get("val_acc", math.nan),
                "test_acc": job.get("test_acc", math.nan),
                "act_first": next(iter(acts.values()), math.nan),
                "act_last": list(acts.values())[-1] if acts else math.nan,
                "grad_first": hidden[0] if hidden else math.nan,
                "grad_last": hidden[-1] if hidden else math.nan,
                "acts": list(acts.values()),
                "grads": hidden,
            }
        )
    return pd.DataFrame(rows)


def verdict(df: pd.DataFrame, chance: float = 0.1) -> str:
    if df.empty:
        return "No run, so nothing to conclude."
    ok = completed(df)
    acc = stats(ok, ["init", "activation"], "val_acc")["mean"] if not ok.empty else pd.Series()
    text = []
    zeros = {a: acc.get(("zeros", a)) for a in df["activation"].unique()}
    zeros = {a: z for a, z in zeros.items() if z is not None and np.isfinite(z)}
    if zeros:
        stuck = all(abs(z - chance) < 0.05 for z in zeros.values())
        text.append(
            f"Zero init {'stayed at' if stuck else 'got away from'} chance: best val accuracy "
            f"{listing([f'{num(z)} ({a})' for a, z in zeros.items()])} against {num(chance)} "
            "for guessing"
            + (
                ", because every hidden unit computes and learns the same thing."
                if stuck
                else ", so the claim that it cannot learn does not show here."
            )
        )
    for act in df["activation"].unique():
        rows = df[(df["activation"] == act) & df["act_last"].notna()]
        scales = {r["init"]: (r["act_first"], r["act_last"]) for _, r in rows.iterrows()}
        if "normal" in scales:
            first, last = scales["normal"]
            a = acc.get(("normal", act))
            saturated = " (saturated at ±1)" if act in ("tanh", "sigmoid") and last > 0.9 else ""
            text.append(
                f"With {act}, N(0, 1) weights gave the first hidden layer's output a std of "
                f"{num(first)} and the last one's {num(last)}{saturated}"
                + (
                    f" (val acc {num(a)})"
                    if a is not None and np.isfinite(a)
                    else " (training failed)"
                )
                + "."
            )
        scaled = [
            f"{INITS.get(i, i)} {num(s[1])}"
            for i, s in scales.items()
            if i in ("scaled_normal", "xavier_normal", "kaiming_normal")
        ]
        if scaled:
            text.append(f"With the scaled inits it was {listing(scaled)}.")
    best = []
    for act in df["activation"].unique():
        options = {i: acc.get((i, act)) for i in df["init"].unique()}
        options = {i: v for i, v in options.items() if v is not None and np.isfinite(v)}
        if options:
            top = max(options, key=options.get)
            best.append(f"{INITS.get(top, top)} for {act} ({num(options[top])})")
    if best:
        text.append(f"Best val accuracy: {listing(best)}.")
    return " ".join(text)


def _chance(ctx, df) -> float:
    """1 / the number of classes of the sweep's data set (0.1 on the digits)."""
    jobs = ctx.jobs("main")
    try:
        from deeptune.run.saved import load_run

        return 1 / max(len(load_run(jobs["path"].iloc[0]).data.classes), 1)
    except ConfigError:
        raise
    except Exception:
        return 0.1


def analyze(ctx) -> Report:
    df = results(ctx.jobs("main"))
    rep = Report(ctx)
    rep.verdict = verdict(df, _chance(ctx, df))
    rep.heading(f"Results (val / test accuracy: mean ± std over {seeds_phrase(df)})")
    rows = []
    for (act, init), g in df.groupby(["activation", "init"], sort=False):
        ok = completed(g)
        first = g["act_first"].dropna()
        rows.append(
            {
                "activation": act,
                "init": INITS.get(init, init),
                "n": str(len(g)),
                "failed": str(len(g) - len(ok)),
                "act std, layer 1 → last (step 0)": (
                    f"{num(first.iloc[0])} → {num(g['act_last'].dropna().iloc[0])}"
                    if len(first)
                    else "n/a"
                ),
                "grad norm, layer 1 → last (step 0)": (
                    f"{num(g['grad_first'].iloc[0])} → {num(g['grad_last'].iloc[0])}"
                ),
                "val acc": mean_pm(ok["val_acc"]),
                "test acc": mean_pm(ok["test_acc"]),
            }
        )
    rep.table(pd.DataFrame(rows), "Scales are from the first seed's net before its first step.")
    for key, title, name in (
        ("acts", "std of each hidden layer's output at step 0", "init_activations.png"),
        ("grads", "gradient norm of each hidden layer at step 0", "init_gradients.png"),
    ):
        acts = sorted(df["activation"].dropna().unique())
        if not acts or not any(len(v) for v in df[key]):
            continue
        fig, axes = figure(width=4.2, ncols=len(acts))
        axes = np.atleast_1d(axes)
        for ax, act in zip(axes, acts, strict=True):
            first_seed = df[(df["activation"] == act)].groupby("init", sort=False).head(1)
            for _, row in first_seed.iterrows():
                values = np.asarray(row[key], float)
                if len(values):
                    values[values <= 0] = np.nan  # zeros: nothing to draw on a log scale
                    ax.plot(
                        range(1, len(values) + 1),
                        values,
                        marker="o",
                        ms=3,
                        label=INITS.get(row["init"], row["init"]),
                    )
            ax.set(yscale="log", xlabel="hidden layer", title=f"{act}")
            ax.legend(fontsize="x-small")
        axes[0].set_ylabel(title.split(" of ")[0])
        fig.suptitle(title + " (zeros: 0, not drawn)", fontsize="medium")
        rep.figure(fig, name, title)
    return rep


EXPERIMENT = Experiment(
    name="initialization",
    title="3. Initialisation: scale at step 0, and what it leads to",
    summary="zeros, N(0,1), N(0,1/n), Xavier, He at depth 8 (relu, tanh): scales at step 0",
    claim=(
        "Zero weights never break the symmetry between hidden units (stuck near chance); N(0, 1) "
        "weights blow activations up layer after layer; N(0, 1/n), Xavier and He scale the "
        "weights to the layer width, keeping activations and gradients at a steady size."
    ),
    sweeps=(
        Sweep(
            "main",
            "init x activation x seed at depth 8",
            budgets={
                "tiny": (
                    "model.init=zeros,kaiming_normal",
                    "model.activation=relu",
                    "seed=0",
                    "trainer.max_epochs=1",
                ),
                "small": ("seed=0,1", "trainer.max_epochs=8"),
                "full": (),
            },
        ),
    ),
    analyze=analyze,
)
