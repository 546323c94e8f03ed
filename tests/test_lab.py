"""The lab (deeptune-lab): the list, each experiment run end to end at the tiny budget, verdicts
that follow their numbers (fake results flip them), and what report.md holds."""

import json
import re
import sys

import numpy as np
import pandas as pd
import pytest
import torch
from helpers.runs import ROOT, compose_cfg, run_cli

from deeptune.config import CONFIG_DIR, group_choices, validate
from deeptune.data.sources import Table
from deeptune.lab import cli
from deeptune.lab.data import LabDataModule
from deeptune.lab.experiments import (
    EXPERIMENTS,
    NAMES,
    batch_size,
    depth,
    initialization,
    learning_rate,
    normalization,
    optimizers,
    recurrent,
    regularization,
    residual,
    restarts_ensembles,
    search_strategies,
    shuffling,
    vanishing_gradients,
)
from deeptune.lab.optim import batch_scaled
from deeptune.lab.results import curves
from deeptune.lab.text import mean_std, pm

ISSUE_NAMES = [
    "depth",
    "vanishing_gradients",
    "initialization",
    "normalization",
    "regularization",
    "optimizers",
    "learning_rate",
    "batch_size",
    "search_strategies",
    "restarts_ensembles",
    "recurrent",
    "shuffling",
    "residual",
]


# ---------------------------------------------------------------------------------------------
# The list, the configs, the lab-only knobs


def test_list(capsys):
    """One line per experiment, then the overrides every experiment takes, the model choices
    read from the configs (so a new model shows up there)."""
    assert cli.main(["list"]) == 0
    *lines, last = capsys.readouterr().out.strip().splitlines()
    assert [line.split()[0] for line in lines] == ISSUE_NAMES == list(NAMES)
    assert last.startswith("Every experiment takes overrides after its name: ")
    assert f"model={'|'.join(group_choices('model'))}," in last and "cnn" in last
    assert "digits_images" in last and "model=cnn data=digits_images" in last


def test_list_console_script():
    ran = run_cli("-m", "deeptune.lab.cli", "list", cwd=ROOT)
    assert ran.returncode == 0, ran.stderr
    assert len(ran.stdout.strip().splitlines()) == len(NAMES) + 1


def test_bad_arguments(capsys):
    assert cli.main(["run", "nope", "--budget", "tiny"]) == 2
    assert "unknown experiment 'nope'" in capsys.readouterr().err
    assert cli.main(["run", "depth", "shuffling"]) == 2  # two names: the second is no override
    assert "not an override" in capsys.readouterr().err


@pytest.mark.parametrize("name", ISSUE_NAMES)
def test_experiment_config_composes_and_validates(name, tmp_path):
    """`python train.py -m experiment=<name>` composes, and its own sweep is in the yaml."""
    cfg = compose_cfg("train", [f"experiment={name}"], tmp_path)
    validate(cfg)
    assert name in cfg.tags
    text = (CONFIG_DIR / "experiment" / f"{name}.yaml").read_text()
    assert text.startswith("# @package _global_") and "params:" in text


def test_lab_data_module_subset_sort_and_drop_last():
    rng = np.random.default_rng(0)
    table = Table.from_labels(rng.normal(size=(400, 3)), np.arange(400) % 4)
    whole = LabDataModule(table, batch_size=7, split_seed=0)
    dm = LabDataModule(
        table,
        batch_size=7,
        train_fraction=0.5,
        sort_by_label=True,
        drop_last=True,
        split_seed=0,
    )
    x, y = dm.splits["train"]
    assert len(y) == len(whole.splits["train"][1]) // 2
    assert (np.diff(y) >= 0).all() and np.bincount(y).min() >= len(y) // 4 - 1  # stratified
    assert np.array_equal(dm.splits["val"][1], whole.splits["val"][1])  # val untouched
    dm.setup()
    batches = list(dm.train_dataloader())
    assert len(batches) == len(dm.train_dataloader()) == len(y) // 7
    assert all(len(b[1]) == 7 for b in batches)


def test_batch_scaled_linear_rule():
    params = [torch.nn.Parameter(torch.zeros(2))]
    assert batch_scaled(
        params, lr=0.02, batch_size=512, base_batch_size=32, lr_scaling="linear", momentum=0.9
    ).param_groups[0]["lr"] == pytest.approx(0.32)
    assert batch_scaled(params, lr=0.02, batch_size=512, base_batch_size=32).param_groups[0][
        "lr"
    ] == pytest.approx(0.02)


def test_mean_std_and_pm():
    df = pd.DataFrame({"k": [1, 1, 2], "v": [0.9, 0.8, np.nan]})
    view = mean_std(df, ["k"], {"v": "value"})
    assert view["value"].tolist() == ["0.850 ± 0.071", "n/a"]
    assert pm(0.5, float("nan")) == "0.500"


# ---------------------------------------------------------------------------------------------
# Verdicts: a pure function of the results; fake results flip them


def frame(rows: list[dict], **defaults) -> pd.DataFrame:
    return pd.DataFrame([{"state": "completed", "seed": 0, **defaults, **r} for r in rows])


def test_verdict_depth():
    good = frame(
        [
            {"depth": d, "seed": s, "val_acc": 0.9 + 0.01 * i, "gap": 0.02, "train_final": 1.0}
            for i, d in enumerate((1, 4, 16))
            for s in (0, 1)
        ]
    )
    text = depth.verdict(good)
    assert "peaked at depth 16" in text and "stayed about the same" in text
    worse = good.assign(
        val_acc=[0.95, 0.95, 0.97, 0.97, 0.90, 0.90], gap=[0.01, 0.01, 0.02, 0.02, 0.08, 0.08]
    )
    text = depth.verdict(worse)
    assert "peaked at depth 4 (0.970" in text and "fell to 0.900" in text
    assert "grew from 0.010 at depth 1 to 0.080 at depth 16" in text


def test_verdict_vanishing_gradients():
    def make(sigmoid_deep):
        return frame(
            [
                {
                    "depth": d,
                    "activation": a,
                    "val_acc": 0.9,
                    "ratio0": {("sigmoid", 16): sigmoid_deep}.get((a, d), 0.5),
                }
                for d in (2, 16)
                for a in ("sigmoid", "relu")
            ]
        )

    assert "So the claim shows" in vanishing_gradients.verdict(make(2e-10))
    assert "2.0e-10" in vanishing_gradients.verdict(make(2e-10))
    assert "did not collapse" in vanishing_gradients.verdict(make(0.3))


def test_verdict_initialization():
    def make(zeros_acc):
        return frame(
            [
                {
                    "init": i,
                    "activation": "relu",
                    "val_acc": acc,
                    "act_first": 1.0,
                    "act_last": last,
                }
                for i, acc, last in (
                    ("zeros", zeros_acc, 0.0),
                    ("normal", 0.5, 3e4),
                    ("kaiming_normal", 0.97, 1.1),
                )
            ]
        )

    text = initialization.verdict(make(0.10), chance=0.1)
    assert "stayed at chance" in text and "He / Kaiming for relu (0.970)" in text
    assert "3e+04" in text or "3.0e+04" in text
    assert "got away from chance" in initialization.verdict(make(0.9), chance=0.1)


def test_verdict_normalization():
    def main(none_high):
        rows = [
            {"norm": n, "lr": lr, "val_acc": 0.95} for n in ("none", "batch") for lr in (0.01, 0.3)
        ]
        df = frame(rows)
        mask = (df["norm"] == "none") & (df["lr"] == 0.3)
        if none_high is None:
            df.loc[mask, ["state", "val_acc"]] = ["failed", np.nan]
        else:
            df.loc[mask, "val_acc"] = none_high
        return df

    def batch(bn_small):
        return frame(
            [
                {
                    "norm": n,
                    "batch_size": b,
                    "val_acc": bn_small if (n, b) == ("batch", 2) else 0.87,
                }
                for n in ("batch", "layer")
                for b in (2, 128)
            ]
        )

    text = normalization.verdict(main(None), batch(0.12))
    assert "diverged (NaN loss) in 1/1 runs" in text and "made the high rate usable" in text
    assert "weakness with tiny batches shows" in text
    text = normalization.verdict(main(0.95), batch(0.86))
    assert "did not make the high rate any better" in text and "does not show" in text


def test_verdict_regularization():
    def main(loss_gap_dropout, acc_gap_dropout=0.10):
        return frame(
            [
                {"dropout": d, "weight_decay": 0.0, "gap": g, "loss_gap": lg, "val_acc": 0.85}
                for d, g, lg in ((0.0, 0.10, 0.60), (0.5, acc_gap_dropout, loss_gap_dropout))
            ]
        )

    stopping = frame(
        [
            {"patience": p, "max_epochs": 60, "epochs": e, "test_acc": t}
            for p, e, t in ((5, 20, 0.85), (1000, 60, 0.86))
        ]
    )
    text = regularization.verdict(main(0.30), stopping)
    assert "Dropout 0.5 (against none) narrowed the train–val gap in loss (0.600 → 0.300" in text
    assert "did not change the gap in accuracy (0.100 → 0.100)" in text
    assert "patience 5 stopped after 20.0 epochs" in text and "67% fewer epochs" in text
    text = regularization.verdict(main(0.90, acc_gap_dropout=0.05), stopping)
    assert "widened the train–val gap in loss" in text and "narrowed the gap in accuracy" in text


def test_verdict_optimizers():
    def make(sgd_epoch):
        curve = lambda k: [0.5] * (k - 1) + [0.97] * (12 - k + 1)  # noqa: E731
        return frame(
            [
                {"optimizer": o, "val_acc": 0.97, "max_epochs": 12, "val_curve": curve(k)}
                for o, k in (("sgd", sgd_epoch), ("momentum", 4), ("adam", 2))
            ]
        )

    text = optimizers.verdict(make(9), target=0.95)
    assert "adam in 2.0, momentum in 4.0 and sgd in 9.0" in text and "ahead of plain SGD" in text
    assert "not ahead of plain SGD" in optimizers.verdict(make(1), target=0.95)
    assert optimizers.epochs_to([0.5, 0.9], 0.95) == float("inf")


def test_verdict_learning_rate():
    def rates(top_state):
        df = frame(
            [
                {"lr": lr, "val_acc": acc, "max_epochs": 10}
                for lr, acc in ((1e-4, 0.2), (0.1, 0.97), (10.0, 0.5))
            ]
        )
        if top_state == "failed":
            df.loc[df["lr"] == 10.0, ["state", "val_acc"]] = ["failed", np.nan]
        return df

    def schedules(cosine, std):
        return frame(
            [
                {"scheduler": s, "seed": k, "val_acc": base + (k - 0.5) * 2 * std}
                for s, base in (("none", 0.96), ("cosine", cosine))
                for k in (0, 1)
            ]
        )

    text = learning_rate.verdict(rates("failed"), schedules(0.98, 0.001))
    assert (
        "best learning rate was 0.1" in text
        and "Too small, after 10 epochs: 0.0001 → 0.200" in text
    )
    assert "10 → NaN loss in 1/1 runs" in text and "above a constant rate" in text
    text = learning_rate.verdict(rates("completed"), schedules(0.961, 0.01))
    assert "Too large: 10 → 0.500" in text and "NaN" not in text and "within the spread" in text


def test_verdict_batch_size():
    def make(scaled_large):
        return frame(
            [
                {
                    "batch_size": b,
                    "scaling": s,
                    "lr": 0.02 * (b / 32 if s == "linear" else 1),
                    "val_acc": {(1024, "none"): 0.6, (1024, "linear"): scaled_large}.get(
                        (b, s), 0.97
                    ),
                    "epochs": 8,
                    "epoch_s": 1.0 if b == 8 else 0.05,
                }
                for b in (8, 1024)
                for s in ("none", "linear")
            ]
        )

    text = batch_size.verdict(make(0.9))
    assert "fell from 0.970 at batch 8 to 0.600 at batch 1024" in text and "recovering" in text
    assert "20.0x faster" in text
    assert "worse than the unscaled" in batch_size.verdict(make(0.4))


def test_verdict_search_strategies():
    def make(grid_best):
        rows = []
        for sampler in ("grid", "random", "tpe"):
            for seed in (0, 1):
                for trial in range(3):
                    lr = [0.005, 0.1, 2.0][trial] if sampler == "grid" else 0.1 * (trial + 1 + seed)
                    if sampler == "grid":
                        acc = grid_best if trial == 1 else 0.5
                    else:
                        acc = 0.94 if trial == 0 else 0.84
                    rows.append(
                        {
                            "sampler": sampler,
                            "search_seed": seed,
                            "trial": trial,
                            "lr": lr,
                            "weight_decay": 1e-5,
                            "val_acc": acc,
                        }
                    )
        return frame(rows)

    text = search_strategies.verdict(make(0.79))
    assert "Random search beat grid search" in text and "Grid search tried 3 distinct" in text
    assert "Grid search beat random search" in search_strategies.verdict(make(0.99))


def test_verdict_restarts_ensembles():
    def make(ensemble):
        return pd.DataFrame(
            [
                {
                    "epochs": e,
                    "n": 5,
                    "single_mean": 0.93,
                    "single_std": 0.01,
                    "single_min": 0.91,
                    "single_max": 0.945,
                    "ensemble": ens,
                    "method": "mean_prob",
                }
                for e, ens in ((2, 0.95), (15, ensemble))
            ]
        )

    assert "at 2 of 2 training budgets" in restarts_ensembles.verdict(make(0.96))
    text = restarts_ensembles.verdict(make(0.90))
    assert "at 1 of 2" in text
    assert "at 15 epochs the ensemble (0.900) did not beat the mean single model (0.930)" in text


def test_verdict_recurrent():
    def make(rnn_long):
        return frame(
            [
                {"cell": c, "seq_len": n, "test_r2": r2, "test_mse": (1 - r2) / 6}
                for n in (10, 50)
                for c, r2 in (("rnn", rnn_long if n == 50 else 0.9), ("lstm", 0.97), ("gru", 0.99))
            ]
        )

    text = recurrent.verdict(make(0.01))
    assert "no better than predicting the mean" in text and "as the claim says" in text
    assert "No gated cell was ahead" in recurrent.verdict(make(0.95))


def test_verdict_shuffling():
    def make(off):
        return frame(
            [
                {"optimizer": o, "shuffle": s, "val_acc": a, "val_final": a}
                for o in ("momentum", "adam")
                for s, a in (("true", 0.96), ("false", off if o == "momentum" else 0.955))
            ]
        )

    text = shuffling.verdict(make(0.60))
    assert "cost accuracy: 0.360 with momentum (the larger" in text
    assert "With adam the order made no clear difference" in text
    assert "the claim does not show" in shuffling.verdict(make(0.955))


def test_verdict_residual():
    """Plain vs residual CNNs at two depths: the claim shown without normalisation, shown only in
    its accuracy half with batch norm, not shown at all, and no completed run."""

    def make(plain_deep_acc, plain_deep_ratio, residual_deep_acc=0.96):
        rows = []
        for norm in ("none", "batch"):
            for net in ("plain", "residual"):
                for d in (2, 12):
                    for seed in (0, 1):
                        deep_plain = (net, d) == ("plain", 12)
                        acc = {("plain", 12): plain_deep_acc, ("residual", 12): residual_deep_acc}
                        rows.append(
                            {
                                "norm": norm,
                                "net": net,
                                "depth": d,
                                "seed": seed,
                                "test_acc": acc.get((net, d), 0.95) + 0.002 * seed,
                                "train_acc": 0.3 if deep_plain else 0.99,
                                # batch norm keeps the gradient: only the accuracy half shows
                                "ratio0": plain_deep_ratio
                                if deep_plain and norm == "none"
                                else 0.5,
                            }
                        )
        return frame(rows)

    text = residual.verdict(make(0.10, 1e-5))
    assert (
        "Without normalisation, test accuracy from depth 2 to 12 went 0.951 ± 0.001 → 0.101 ± "
        "0.001 for plain nets and 0.951 ± 0.001 → 0.961 ± 0.001 for residual ones: the plain nets "
        "lost 0.850 while the residual ones held (they changed by +0.010, within 0.020" in text
    )
    assert "harder to optimise, not overfitting" in text
    assert "0.500 → 1e-05 in plain nets and 0.500 → 0.500 in residual ones: it fell below" in text
    assert text.endswith(
        "So, without normalisation the claim shows in full; with batch norm only its accuracy "
        "half shows."
    )
    text = residual.verdict(make(0.94, 0.5))  # deep plain nets about as good, gradients alive
    assert "the plain nets did not lose more than the noise (0.020; they changed by -0.010)" in text
    assert "the plain nets' ratio stayed above the callback's 0.01 threshold" in text
    assert text.endswith(
        "So, without normalisation the claim does not show; with batch norm the claim does not "
        "show."
    )
    text = residual.verdict(make(0.10, 1e-5, residual_deep_acc=0.80))  # residual nets fell too
    assert "the residual nets lost accuracy too, though less (0.150 against 0.850)" in text
    assert "without normalisation only its gradient half shows" in text
    none = make(0.10, 1e-5).assign(state="failed", test_acc=np.nan)
    assert residual.verdict(none).startswith("No run completed")
    one_depth = make(0.10, 1e-5).query("depth == 12")
    assert "a trend with depth needs two depths" in residual.verdict(one_depth)


# ---------------------------------------------------------------------------------------------
# End to end


def test_run_shuffling_end_to_end(tmp_path, capsys):
    """The console script runs the sweep through train.py, then writes the report and index;
    the same command again skips the finished sweep; another command needs --force."""
    out = tmp_path / "lab"
    args = ["run", "shuffling", "--budget", "tiny", "--jobs", "1", "--out", str(out)]
    ran = run_cli("-m", "deeptune.lab.cli", *args, cwd=tmp_path)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    report = (out / "shuffling" / "report.md").read_text()
    assert report.startswith("# 12. Shuffling")
    assert (
        "**Verdict** (computed from the numbers below). Best val accuracy with momentum" in report
    )
    assert "| shuffle | n | val acc (best epoch) |" in report
    assert "![validation accuracy with and without shuffling](shuffling.png)" in report
    assert f"command: `deeptune-lab run shuffling --budget tiny --out {out}`" in report
    assert re.search(r"budget: `tiny`; date: \d{4}-\d\d-\d\dT", report)
    assert "2 CPUs" in report or " CPUs" in report
    assert (
        "python train.py -m experiment=shuffling optimizer=momentum seed=0 trainer.max_epochs=1"
        in report
    )
    assert (out / "shuffling" / "shuffling.png").stat().st_size > 5000
    index = (out / "README.md").read_text()
    assert "[shuffling](shuffling/report.md)" in index and "reshuffled every epoch" in index
    jobs = sorted((out / "shuffling" / "runs" / "main").glob("*/metrics.json"))
    assert len(jobs) == 2 and not curves(jobs[0].parent).empty
    before = [p.read_text() for p in jobs]

    assert cli.main(args) == 0  # again: nothing to run
    assert "done earlier (2 completed), skipped" in capsys.readouterr().out
    assert [p.read_text() for p in jobs] == before
    assert cli.main([*args, "trainer.max_epochs=2"]) == 1  # another command, same folder
    assert "rerun with --force" in capsys.readouterr().err


def test_interrupted_sweep_resumes_and_keeps_finished_jobs(tmp_path, capsys):
    """A sweep whose record says it never finished is launched again: the finished job is
    restored from its checkpoint, its metrics.json (the original timing included) kept."""
    out = tmp_path / "lab"
    args = [
        "run",
        "shuffling",
        "--budget",
        "tiny",
        "--jobs",
        "1",
        "--in-process",
        "--out",
        str(out),
    ]
    assert cli.main(args) == 0
    folder = out / "shuffling" / "runs" / "main"
    record = json.loads((folder / "lab.json").read_text())
    del record["finished"]  # as if the lab had been killed during the sweep
    (folder / "lab.json").write_text(json.dumps(record))
    kept = (folder / "0" / "metrics.json").read_text()
    (folder / "1" / "metrics.json").unlink()  # job 1 was interrupted
    capsys.readouterr()
    assert cli.main(args) == 0
    assert (folder / "0" / "metrics.json").read_text() == kept
    assert json.loads((folder / "1" / "metrics.json").read_text())["status"] == "completed"
    assert "2 completed" in capsys.readouterr().out


def test_every_experiment_at_the_tiny_budget(tmp_path):
    """Each experiment's sweeps through train.py (in this process, to save the imports of a
    subprocess per sweep) and its analysis: report.md with a verdict, a table and its PNGs."""
    out = tmp_path / "lab"
    code = cli.main(
        ["run", "all", "--budget", "tiny", "--jobs", "1", "--in-process", "--out", str(out)]
    )
    assert code == 0
    for name in NAMES:
        summary = json.loads((out / name / "summary.json").read_text())
        report = (out / name / "report.md").read_text()
        assert summary["verdict"] and summary["verdict"] in report, name
        assert "| --- |" in report, name
        assert summary["figures"], name
        for png in summary["figures"]:
            assert f"]({png})" in report and (out / name / png).is_file(), (name, png)
        assert sys.executable not in report  # the commands are shown as a user types them
    index = (out / "README.md").read_text()
    assert all(f"]({name}/report.md)" in index for name in EXPERIMENTS)


def test_residual_at_the_tiny_budget(tmp_path):
    """The residual experiment end to end: plain and residual CNNs on the digits as images, a
    row per net and depth (the swept `model.residual` read as the bool it names), the verdict
    and the figure; `model=cnn data=digits_images` come from its own yaml."""
    out = tmp_path / "lab"
    args = ["run", "residual", "--budget", "tiny", "--jobs", "1", "--in-process", "--out", str(out)]
    assert cli.main(args) == 0
    report = (out / "residual" / "report.md").read_text()
    assert report.startswith("# 13. Residual connections")
    assert (
        "**Verdict** (computed from the numbers below). Without normalisation, test acc" in report
    )
    for net in ("plain", "residual"):
        for d in (1, 3):
            assert re.search(rf"\| none \| {net} \| {d} \| 1 \| 0\.\d+ \|", report), (net, d)
    assert "ratio at step 0 (geo-mean)" in report and "n/a" not in report
    assert "![test accuracy and gradient ratio against depth](residual.png)" in report
    assert (out / "residual" / "residual.png").stat().st_size > 5000
    config = (out / "residual" / "runs" / "main" / "0" / "config.yaml").read_text()
    assert "deeptune.models.cnn.CNN" in config and "digits_images" in config


def test_an_experiment_runs_on_the_cnn(tmp_path):
    """Overrides go to every sweep: the depth experiment on model=cnn data=digits_images."""
    out = tmp_path / "lab"
    args = ["run", "depth", "--budget", "tiny", "--jobs", "1", "--in-process", "--out", str(out)]
    assert cli.main([*args, "model=cnn", "data=digits_images"]) == 0
    config = (out / "depth" / "runs" / "main" / "0" / "config.yaml").read_text()
    assert "deeptune.models.cnn.CNN" in config and "digits_images" in config
    assert "model=cnn data=digits_images" in (out / "depth" / "report.md").read_text()


@pytest.mark.slow
def test_an_experiment_that_cannot_take_the_overrides_says_so_in_one_line(tmp_path):
    """The recurrent experiment sweeps data.seq_len of its own data=adding: on the digits as
    images it cannot run, and the lab says why in one line, naming what the yaml chose."""
    ran = run_cli(
        *("-m", "deeptune.lab.cli", "run", "recurrent", "--budget", "tiny", "--jobs", "1"),
        *("--out", str(tmp_path / "lab"), "model=cnn", "data=digits_images"),
        cwd=tmp_path,
    )
    assert ran.returncode == 1
    errors = [line for line in ran.stderr.splitlines() if line.strip()]
    assert len(errors) == 1, ran.stderr
    assert errors[0].startswith(
        "error: recurrent cannot run with model=cnn data=digits_images (it is built on "
        "model=rnn data=adding): data.seq_len is not a key of the config"
    )
    assert "Traceback" not in ran.stdout + ran.stderr
