"""11. Recurrent cells: a plain RNN, an LSTM and a GRU on the adding problem."""

import pandas as pd

from deeptune.lab.experiment import Experiment, Sweep
from deeptune.lab.figures import band, figure
from deeptune.lab.report import Report
from deeptune.lab.results import column, completed
from deeptune.lab.text import listing, mean_std, num, stats

LEARNED = 0.5  # test r2 above this: the net learned the task (r2 0 = predicting the mean)


def results(jobs: pd.DataFrame) -> pd.DataFrame:
    """One row per job: cell, seq_len, seed, state, test_mse, test_r2, val_mse."""
    return pd.DataFrame(
        {
            "cell": column(jobs, "model.cell"),
            "seq_len": column(jobs, "data.seq_len"),
            "seed": column(jobs, "seed"),
            "state": column(jobs, "state", "missing"),
            "test_mse": column(jobs, "test_mse"),
            "test_r2": column(jobs, "test_r2"),
            "val_mse": column(jobs, "val_mse"),
        }
    )


def verdict(df: pd.DataFrame) -> str:
    ok = completed(df)
    if ok.empty:
        return "No run completed, so nothing to conclude."
    r2 = stats(ok, ["seq_len", "cell"], "test_r2")["mean"]
    mse = stats(ok, ["seq_len", "cell"], "test_mse")["mean"]
    long, short = ok["seq_len"].max(), ok["seq_len"].min()
    cells = list(dict.fromkeys(ok["cell"]))

    def at(length):
        return [f"{c} {num(r2.get((length, c)))}" for c in cells if (length, c) in r2]

    text = [f"Test r2 at sequence length {long}: {listing(at(long))}"]
    if short != long:
        text[0] += f"; at length {short}: {listing(at(short))}."
    else:
        text[0] += "."
    rnn = r2.get((long, "rnn"))
    gated = {c: r2.get((long, c)) for c in ("lstm", "gru") if (long, c) in r2}
    if rnn is not None and rnn < LEARNED:
        text.append(
            f"At length {long} the plain RNN did no better than predicting the mean "
            f"(MSE {num(mse.get((long, 'rnn')))}; r2 0 is the mean)."
        )
    if rnn is not None and gated:
        ahead = [c for c, v in gated.items() if v > rnn + 0.1]
        if len(ahead) == len(gated):
            text.append(
                f"So the gated cells ({listing([c.upper() for c in ahead])}) are ahead of the "
                "plain RNN on long sequences, as the claim says."
            )
        elif ahead:
            behind = [c.upper() for c in gated if c not in ahead]
            text.append(
                f"{listing([c.upper() for c in ahead])} was ahead of the plain RNN at length "
                f"{long}, {listing(behind)} not at this budget: the claim shows only in part."
            )
        else:
            text.append(
                f"No gated cell was ahead of the plain RNN at length {long}: the claim does not "
                "show here."
            )
    return " ".join(text)


def analyze(ctx) -> Report:
    df = results(ctx.jobs("main"))
    rep = Report.of(ctx, df, verdict)
    rep.table(
        mean_std(
            df.sort_values(["seq_len"], kind="stable"),
            ["seq_len", "cell"],
            {"test_mse": "test MSE", "test_r2": "test r2"},
        ),
        "The adding problem: predicting the mean target gives MSE ~0.167 and r2 0.",
    )
    ok = completed(df)
    if not ok.empty:
        fig, (left, right) = figure(ncols=2)
        for cell, g in ok.groupby("cell", sort=False):
            s = stats(g, "seq_len", "test_r2").sort_index()
            band(left, s.index, s["mean"], s["std"], label=cell)
            s = stats(g, "seq_len", "test_mse").sort_index()
            band(right, s.index, s["mean"], s["std"], label=cell)
        left.axhline(0, color="k", ls=":", lw=1)
        right.axhline(1 / 6, color="k", ls=":", lw=1, label="predict the mean")
        left.set(xlabel="sequence length", ylabel="test r2", title="r2 (1 = solved)")
        right.set(xlabel="sequence length", ylabel="test MSE", yscale="log", title="MSE")
        for ax in (left, right):
            lengths = sorted(ok["seq_len"].unique())
            ax.set_xticks(lengths, [str(int(n)) for n in lengths])
            ax.legend(fontsize="small")
        rep.figure(fig, "recurrent.png", "r2 and MSE against sequence length")
    return rep


EXPERIMENT = Experiment(
    name="recurrent",
    title="11. Gated recurrent cells on long sequences",
    summary="rnn vs lstm vs gru on the adding problem at growing sequence length",
    claim=(
        "A plain RNN's gradient fades over time steps, so it cannot carry information across "
        "long sequences; gated cells (LSTM, GRU) keep it and solve the adding problem where the "
        "plain RNN stays at the baseline."
    ),
    sweeps=(
        Sweep(
            "main",
            "cell x sequence length x seed",
            budgets={
                "tiny": (
                    "model.cell=rnn,lstm",
                    "data.seq_len=10",
                    "seed=0",
                    "trainer.max_epochs=1",
                    "data.source.n_samples=500",
                ),
                "small": ("data.seq_len=10,50", "seed=0,1", "trainer.max_epochs=25"),
                "full": (),
            },
        ),
    ),
    analyze=analyze,
)
