"""deeptune-report: fake sweep folders in-process, one real grid sweep through the CLI."""

import json
import statistics
import sys
from pathlib import Path

import optuna
import pytest
import yaml
from helpers.runs import ROOT, run_cli
from omegaconf import OmegaConf
from scipy import stats

from deeptune.sweeps import plots, report, summary
from deeptune.sweeps.summary import SweepSummary

ACC = {  # val/acc of the fake grid sweep: optimizer x seed
    ("sgd", 1): 0.80,
    ("sgd", 2): 0.84,
    ("sgd", 3): 0.82,
    ("adam", 1): 0.95,
    ("adam", 2): 0.91,
    ("adam", 3): 0.93,
}


def make_job(sweep: Path, num, overrides: list[str], metrics: dict | None, metric="val/acc"):
    """A job folder as train.py leaves it; metrics=None is a job that failed."""
    job = sweep / str(num)
    (job / ".hydra").mkdir(parents=True)
    (job / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    (job / "config.yaml").write_text(yaml.safe_dump({"optimized_metric": metric, "seed": 0}))
    if metrics is not None:
        (job / "metrics.json").write_text(json.dumps(metrics))


def done(acc: float, loss: float = 1.0, seed: int = 0) -> dict:
    """metrics.json of a completed job (2.5 s, 3 epochs)."""
    split = {"acc": acc, "f1": acc, "loss": loss}
    run = {"epochs": 3, "best_epoch": 1, "best_checkpoint": "x.ckpt", "duration_s": 2.5}
    return {"status": "completed", "train": split, "val": split, "test": split, "seed": seed, **run}


@pytest.fixture
def grid(tmp_path) -> Path:
    """6 completed jobs (2 optimizers x 3 seeds), one pruned, one failed; a constant override."""
    sweep = tmp_path / "sweep"
    sweep.mkdir()
    (sweep / "multirun.yaml").write_text("hydra: {}\n")
    for num, ((opt, seed), acc) in enumerate(ACC.items()):
        loss = 1 - acc
        overrides = [f"optimizer={opt}", f"seed={seed}", "trainer.max_epochs=3", "hydra.verbose=x"]
        make_job(sweep, num, overrides, done(acc, loss, seed))
    make_job(sweep, 6, ["optimizer=adam", "seed=4", "trainer.max_epochs=3"], None)
    pruned = {"status": "pruned", "epochs": 1, "seed": 5}
    make_job(sweep, 7, ["optimizer=sgd", "seed=5", "trainer.max_epochs=3"], pruned)
    return sweep


def table(text: str, heading: str) -> list[list[str]]:
    """The rows of the markdown table under `heading`, header first, without the --- line."""
    block = text.split(heading, 1)[1].split("\n\n")[1]
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in block.splitlines()]
    return [rows[0], *rows[2:]]


def test_grid_report(grid, capsys):
    report.main([str(grid)])
    text = (grid / "report.md").read_text()
    assert "- jobs: 8 (completed 6, pruned 1, failed 1)" in text
    assert "- metric: `val/acc`, direction: max" in text
    assert "- varied: `optimizer`, `seed`" in text  # trainer.max_epochs and hydra.* are not

    jobs = table(text, "## Jobs")
    assert jobs[0] == ["job", "optimizer", "seed", "val/acc", "state", "duration_s", "epochs"]
    assert [r[0] for r in jobs[1:]] == ["3", "5", "4", "1", "2", "0", "7", "6"]  # best first
    assert jobs[1] == ["3", "adam", "1", "0.9500", "completed", "2.5", "3"]
    assert jobs[-2][3:5] == ["-", "pruned"] and jobs[-1][3:5] == ["-", "failed"]

    configs = table(text, "## Configurations")
    assert configs[0] == ["optimizer", "n", "val/acc mean ± std", "95% CI"]
    for row, opt in zip(configs[1:], ["adam", "sgd"], strict=True):
        accs = [a for (o, _), a in ACC.items() if o == opt]
        mean, std = statistics.mean(accs), statistics.stdev(accs)
        half = stats.t.ppf(0.975, 2) * std / 3**0.5
        assert row == [
            opt,
            "3",
            f"{mean:.4f} ± {std:.4f}",
            f"[{mean - half:.4f}, {mean + half:.4f}]",
        ]

    for png in ("metric_vs_optimizer.png", "best_so_far.png"):
        assert (grid / png).stat().st_size > 1000 and f"]({png})" in text
    assert not (grid / "metric_vs_seed.png").exists()  # seeds are error bars, not a parameter
    out = capsys.readouterr().out
    assert "best 5 of 8 jobs" in out and f"report: {grid / 'report.md'}" in out.replace("\n", "")


def test_metric_option_loss_is_minimised(grid, tmp_path):
    report.main([str(grid), "--metric", "test/loss", "--out", str(tmp_path / "elsewhere")])
    text = (tmp_path / "elsewhere" / "report.md").read_text()
    assert "- metric: `test/loss`, direction: min" in text
    jobs = table(text, "## Jobs")
    assert [r[0] for r in jobs[1:4]] == ["3", "5", "4"]  # lowest loss first
    assert jobs[1][3] == f"{1 - 0.95:.4f}"
    assert (tmp_path / "elsewhere" / "best_so_far.png").exists()
    assert not (grid / "report.md").exists()


def test_single_job_metric_from_its_config(tmp_path):
    make_job(tmp_path, 0, ["model.depth=4"], done(0.9, loss=0.3), metric="val/loss")
    report.main([str(tmp_path)])
    text = (tmp_path / "report.md").read_text()
    assert "- jobs: 1 (completed 1, pruned 0, failed 0)" in text and "- varied: nothing" in text
    assert "- metric: `val/loss`, direction: min" in text
    assert table(text, "## Jobs")[1] == ["0", "0.3000", "completed", "2.5", "3"]
    assert "## Configurations" not in text and (tmp_path / "best_so_far.png").exists()


def test_not_a_multirun_folder(tmp_path, capsys):
    (tmp_path / "outputs").mkdir()
    with pytest.raises(SystemExit) as exit_info:
        report.main([str(tmp_path)])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "not a multirun folder" in err and err.count("\n") == 1


def test_numeric_parameter_on_log_axis(tmp_path):
    for num, lr in enumerate([1e-4, 1e-3, 1e-2, 1e-1]):
        make_job(tmp_path, num, [f"optimizer.lr={lr}", "model.depth=2"], done(0.5 + lr))
    df, varied = report.job_table(report.read_jobs(tmp_path), "val/acc", None)
    assert varied == ["optimizer.lr"] and df["optimizer.lr"].tolist() == [1e-4, 1e-3, 1e-2, 1e-1]
    fig = plots.metric_vs_param(df, "optimizer.lr", "val/acc", False, tmp_path / "lr.png")
    assert fig.axes[0].get_xscale() == "log"
    fig = plots.metric_vs_param(df[df["optimizer.lr"] > 1e-3], "optimizer.lr", "val/acc", False,
                                tmp_path / "lr2.png")  # fmt: skip
    assert fig.axes[0].get_xscale() == "linear"  # one decade


def test_optuna_sweep(tmp_path):
    """States from the study (a job killed mid-run is 'running', not 'failed'), a moved database,
    parameter importance."""
    sweep = tmp_path / "sweep"
    sweep.mkdir()
    study = optuna.create_study(
        study_name="s", storage=f"sqlite:///{sweep / 'optuna.db'}", direction="maximize"
    )
    dists = {
        "optimizer.lr": optuna.distributions.FloatDistribution(1e-4, 1e-1, log=True),
        "optimizer": optuna.distributions.CategoricalDistribution(["sgd", "adam"]),
    }
    S = optuna.trial.TrialState
    trials = [  # (state, lr, optimizer, val/acc)
        (S.COMPLETE, 1e-3, "adam", 0.93),
        (S.COMPLETE, 1e-2, "sgd", 0.85),
        (S.PRUNED, 1e-4, "sgd", None),
        (S.COMPLETE, 3e-2, "adam", 0.96),
        (S.FAIL, 1e-1, "sgd", None),
        (S.RUNNING, 5e-3, "adam", None),
    ]
    for num, (state, lr, opt, acc) in enumerate(trials):
        params = {"optimizer.lr": lr, "optimizer": opt}
        values = {0: 0.5} if state == S.PRUNED else None
        trial = optuna.trial.create_trial(
            state=state, value=acc, params=params, distributions=dists, intermediate_values=values
        )
        study.add_trial(trial)
        overrides = [f"optimizer.lr={lr}", f"optimizer={opt}", f"optuna.trial={num}"]
        metrics = done(acc) if acc else {"status": "pruned", "epochs": 1, "seed": 0}
        make_job(sweep, num, overrides, metrics if state in (S.COMPLETE, S.PRUNED) else None)
    results = {"storage": "sqlite:////gone/optuna.db", "study_name": "s", "direction": "maximize"}
    (sweep / "optimization_results.yaml").write_text(yaml.safe_dump(results))

    report.main([str(sweep)])
    text = (sweep / "report.md").read_text()
    assert "- jobs: 6 (completed 3, pruned 1, failed 1, running 1)" in text
    assert "- varied: `optimizer.lr`, `optimizer`" in text  # optuna.trial is plumbing
    jobs = table(text, "## Jobs")
    assert [(r[0], r[4]) for r in jobs[1:]] == [
        ("3", "completed"), ("0", "completed"), ("1", "completed"),
        ("2", "pruned"), ("4", "failed"), ("5", "running"),
    ]  # fmt: skip
    assert "## Configurations" not in text  # no seeds
    for png in ("param_importance.png", "metric_vs_optimizer.lr.png", "metric_vs_optimizer.png"):
        assert (sweep / png).stat().st_size > 1000 and f"]({png})" in text

    # A trial that a sweep on another machine ran (its folder is there): named, not dropped.
    study.add_trial(optuna.trial.create_trial(state=S.COMPLETE, value=0.9, params=params,
                                              distributions=dists))  # fmt: skip
    report.main([str(sweep)])
    assert "- 1 trial(s) of study s ran in another folder: 6" in (sweep / "report.md").read_text()


INTERRUPTED = {"status": "interrupted", "signal": "SIGTERM", "epochs": 2, "seed": 0}


def test_interrupted_job_is_neither_failed_nor_lost(grid, capsys):
    make_job(grid, 8, ["optimizer=sgd", "seed=6", "trainer.max_epochs=3"], INTERRUPTED)
    report.main([str(grid)])
    text = (grid / "report.md").read_text()
    assert "- jobs: 9 (completed 6, pruned 1, failed 1, interrupted 1)" in text
    assert "- 1 interrupted (stopped, not failed): to continue, run the same command again" in text
    assert "from their checkpoints/last.ckpt" in text
    jobs = table(text, "## Jobs")
    assert [(r[0], r[4]) for r in jobs[-3:]] == [
        ("7", "pruned"),
        ("8", "interrupted"),
        ("6", "failed"),
    ]
    assert "1 interrupted (stopped, not failed)" in capsys.readouterr().out


def test_trials_a_stopped_optuna_sweep_abandoned_are_interrupted(tmp_path):
    """FAIL flagged interrupted, FAIL retried since (a stale one), a job that recorded its signal
    while the study still says RUNNING: interrupted. A FAIL of its own stays failed."""
    study = optuna.create_study(study_name="s", storage=f"sqlite:///{tmp_path / 'optuna.db'}")
    dist = {"optimizer.lr": optuna.distributions.FloatDistribution(1e-4, 1e-1, log=True)}
    S = optuna.trial.TrialState
    trials = [  # (state, user attrs, metrics.json)
        (S.COMPLETE, {}, done(0.9)),
        (S.FAIL, {"interrupted": True, "error": "interrupted: its sweep stopped"}, INTERRUPTED),
        (S.FAIL, {}, None),  # its heartbeat went stale; trial 4 is its retry
        (S.RUNNING, {}, INTERRUPTED),
        (S.WAITING, {"retry_of": 2}, None),
        (S.FAIL, {"error": "ValueError"}, None),
    ]
    for num, (state, attrs, metrics) in enumerate(trials):
        lr = 10 ** -(1 + num / 2)
        study.add_trial(
            optuna.trial.create_trial(
                state=state,
                value=0.9 if state == S.COMPLETE else None,
                params={"optimizer.lr": lr},
                distributions=dist,
                user_attrs=attrs,
            )
        )
        make_job(tmp_path, num, [f"optimizer.lr={lr}", f"optuna.trial={num}"], metrics)
    results = {"storage": f"sqlite:///{tmp_path / 'optuna.db'}", "study_name": "s"}
    (tmp_path / "optimization_results.yaml").write_text(yaml.safe_dump(results))

    report.main([str(tmp_path)])
    text = (tmp_path / "report.md").read_text()
    assert "(completed 1, pruned 0, failed 1, interrupted 3, waiting 1)" in text
    states = {r[0]: r[3] for r in table(text, "## Jobs")[1:]}
    assert states == {
        "0": "completed", "1": "interrupted", "2": "interrupted", "3": "interrupted",
        "4": "waiting", "5": "failed",
    }  # fmt: skip
    assert "run the same command again, with the same hydra.sweeper.storage and " in text
    assert "hydra.sweeper.study_name=s: the study runs them again" in text


@pytest.mark.slow
def test_cli_on_a_real_grid_sweep(tmp_path):
    sweep = tmp_path / "sweep"
    args = ["optimizer=sgd,adam", "seed=1,2,3", "logger=csv", "trainer.max_epochs=1"]
    ran = run_cli(str(ROOT / "train.py"), "-m", *args, f"hydra.sweep.dir={sweep}", cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr[-2000:]
    console_script = Path(sys.executable).parent / "deeptune-report"  # a Python script itself
    ran = run_cli(str(console_script), str(sweep), cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr[-2000:]
    assert f"report: {sweep / 'report.md'}" in ran.stdout.replace("\n", "")
    text = (sweep / "report.md").read_text()
    assert "- jobs: 6 (completed 6, pruned 0, failed 0)" in text
    configs = table(text, "## Configurations")
    assert sorted(r[0] for r in configs[1:]) == ["adam", "sgd"]
    for row in configs[1:]:
        assert row[1] == "3" and " ± " in row[2] and row[3].startswith("[")
    assert (sweep / "metric_vs_optimizer.png").exists() and (sweep / "best_so_far.png").exists()


def test_the_summary_a_multirun_ends_with(grid, capsys, caplog):
    """Hydra's callback, called as Hydra calls it when a multirun ends: configurations over
    seeds best first (mean ± std, their jobs), the job counts, the folder's size, the report."""

    def config(folder):
        return OmegaConf.create(
            {"optimized_metric": "val/acc", "hydra": {"sweep": {"dir": folder}}}
        )

    SweepSummary(top=5).on_multirun_end(config(grid))
    out = capsys.readouterr().out
    size = summary.human_size(summary.folder_size(grid))
    assert f"sweep: 8 jobs (completed 6, pruned 1, failed 1), {size} in {grid}" in out
    assert "best 2 of 2 configurations by val/acc, mean ± std over seeds" in out
    rows = [line.split() for line in out.splitlines() if line.startswith(("3,4,5", "0,1,2"))]
    assert rows == [
        ["3,4,5", "0.9300", "±", "0.0200", "3", "optimizer=adam"],
        ["0,1,2", "0.8200", "±", "0.0200", "3", "optimizer=sgd"],
    ]
    assert out.rstrip().endswith(f"deeptune-report {grid}")

    plain = grid.parent / "plain"  # one seed per configuration: the jobs themselves
    for num, (opt, acc) in enumerate([("sgd", 0.8), ("adam", 0.95), ("momentum", 0.9)]):
        make_job(plain, num, [f"optimizer={opt}", "model.depth=2"], done(acc))
    SweepSummary(top=2).on_multirun_end(config(plain))
    out = capsys.readouterr().out
    assert "best 2 of 3 jobs by val/acc (higher is better)" in out
    rows = [line.split() for line in out.splitlines() if line[:1].isdigit()]
    assert rows == [["1", "0.9500", "optimizer=adam"], ["2", "0.9000", "optimizer=momentum"]]

    SweepSummary().on_multirun_end(config(grid / "nothing"))
    assert "no sweep summary (SweepFolderError" in caplog.text  # a warning; the jobs have run
    assert not capsys.readouterr().out
    SweepSummary().on_multirun_end(OmegaConf.create({"hydra": {"sweep": {"dir": str(grid)}}}))
    assert not capsys.readouterr().out  # eval.py -m, predict.py -m: nothing to rank by


def test_the_console_table_keeps_whole_names_at_80_columns(tmp_path, capsys, monkeypatch):
    """The bayes preset's eight keys: each row's overrides fold, none is cut to `ada…`."""
    monkeypatch.setenv("COLUMNS", "80")
    for num, opt in enumerate(["adamw", "momentum", "adam"]):
        overrides = [f"optimizer={opt}", f"optimizer.lr={0.00123 * (num + 1)}"]
        overrides += [f"optimizer.weight_decay={3.9e-6 * (num + 1)}", f"model.depth={num + 1}"]
        overrides += ["model.width=128", "model.activation=gelu", f"model.dropout={0.1 * num}"]
        overrides += [f"data.batch_size={32 * (num + 1)}"]
        make_job(tmp_path, num, overrides, done(0.9 + 0.01 * num))
    report.main([str(tmp_path)])
    out = capsys.readouterr().out
    # the lines that name a path are left whole (a path cut at 80 columns cannot be copied)
    table = [line for line in out.splitlines() if "/" not in line]
    assert "…" not in "\n".join(table) and max(map(len, table)) <= 80
    for opt in ("adamw", "momentum", "adam"):
        assert f"optimizer={opt} " in out
    assert "optimizer.weight_decay=3.9e-06" in out and "data.batch_size=96" in out
