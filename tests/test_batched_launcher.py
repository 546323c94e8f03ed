"""hydra/launcher=batched: a sweep's jobs that differ only in per-member knobs trained as one
batched fit, their folders and metrics as the basic launcher leaves them."""

import json
import logging
from pathlib import Path

import pytest
from helpers.runs import ROOT, run_cli
from omegaconf import OmegaConf

from hydra_plugins.deeptune_batched_launcher import launcher

GRID = ["seed=1,2", "optimizer.lr=0.001,0.003", "trainer.max_epochs=3", "logger=csv"]


def _sweep(tmp_path: Path, launcher: str, *extra: str) -> Path:
    folder = tmp_path / launcher
    run = run_cli(
        str(ROOT / "train.py"),
        "-m",
        *GRID,
        *extra,
        f"hydra/launcher={launcher}",
        f"hydra.sweep.dir={folder}",
        cwd=tmp_path,
    )
    assert run.returncode == 0, (run.stdout + run.stderr)[-3000:]
    return folder


def _files(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()}


@pytest.mark.slow
def test_a_grid_batched_matches_the_basic_launcher(tmp_path):
    basic, batched = _sweep(tmp_path, "basic"), _sweep(tmp_path, "batched")
    for job in range(4):
        a = json.loads((basic / str(job) / "metrics.json").read_text())
        b = json.loads((batched / str(job) / "metrics.json").read_text())
        assert b["backend"] == "batched"  # trained together, not one by one
        assert b["duration_s"] > 0  # its share of the group's time, not the ~0 of reading it
        assert a["seed"] == b["seed"] and a["epochs"] == b["epochs"]
        assert a["best_epoch"] == b["best_epoch"]
        for split in ("val", "test"):
            assert a[split]["acc"] == pytest.approx(b[split]["acc"], abs=1e-6)
            assert a[split]["loss"] == pytest.approx(b[split]["loss"], abs=1e-4)
    # the same job files (a batched member writes no per-epoch CSV: its fit is not Lightning's)
    missing = {f for f in _files(basic) - _files(batched) if "/csv/" not in f}
    assert not missing, sorted(missing)


@pytest.mark.slow
def test_optuna_with_n_jobs_4_reaches_n_trials_batched(tmp_path):
    """6 trials 4 at a time: a batch of 4 and a short last batch of 2, each one batched fit."""
    import optuna
    import yaml
    from optuna.trial import TrialState

    from deeptune.sweeps import report

    sweep = tmp_path / "sweep"
    run = run_cli(
        str(ROOT / "train.py"),
        "-m",
        "hydra/sweeper=optuna",
        "hydra/launcher=batched",
        "hydra.sweeper.n_trials=6",
        "hydra.sweeper.n_jobs=4",
        "hydra.sweeper.seed=0",
        "hydra.sweeper.pruner=median",  # configured, and off for trials fitted together
        "optimizer.lr=tag(log, interval(1e-4, 1e-1))",
        "seed=range(0, 100)",
        "trainer.max_epochs=2",
        "logger=csv",
        f"hydra.sweep.dir={sweep}",
        cwd=tmp_path,
    )
    out = run.stdout + run.stderr
    assert run.returncode == 0, out[-3000:]
    assert "deeptune: 4 members batched" in out and "deeptune: 2 members batched" in out
    assert out.count("trials fitted together are not pruned") == 2  # one line per batch

    results = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    study = optuna.load_study(study_name=results["study_name"], storage=results["storage"])
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 6  # exactly n_trials
    assert results["trials"]["complete"] == 6 and results["n_trials"] == 6
    for trial in study.trials:  # job n is trial n, trained batched, its value its own metric
        job = sweep / str(trial.number)
        metrics = json.loads((job / "metrics.json").read_text())
        config = yaml.safe_load((job / ".hydra" / "config.yaml").read_text())
        assert metrics["backend"] == "batched" and metrics["status"] == "completed"
        assert config["seed"] == trial.params["seed"] == metrics["seed"]
        assert config["optimizer"]["lr"] == trial.params["optimizer.lr"]
        split, _, name = config["optimized_metric"].partition("/")
        assert trial.value == metrics[split][name]
    assert len({t.value for t in study.trials}) > 1  # members kept their own lr and seed

    # the summary the multirun ended with, and the report, read the batched jobs unchanged
    assert "sweep: 6 jobs (completed 6), " in run.stdout
    assert "best 5 of 6 jobs by val/acc (higher is better)" in run.stdout
    read = report.load(sweep)
    assert read.df["job"].tolist() == list(range(6))
    assert read.df["value"].tolist() == [t.value for t in study.trials]
    report.main([str(sweep)])
    assert (sweep / "report.md").is_file()


@pytest.mark.parametrize(
    "pruner, said",
    [
        ("none", False),  # hydra/sweeper=optuna's default: the basic launcher prunes nothing
        ({"_target_": "optuna.pruners.NopPruner"}, False),
        ("median", True),
        ({"_target_": "optuna.pruners.MedianPruner", "n_startup_trials": 2}, True),
    ],
)
def test_pruning_off_is_said_only_when_the_sweep_prunes(monkeypatch, caplog, pruner, said):
    # two Optuna trials that agree: one group, whose per-epoch pruning the batched fit drops
    monkeypatch.setattr(launcher, "_member", lambda config: ("one group", config, True))
    batched = launcher.BatchedLauncher()
    batched.config = OmegaConf.create({"hydra": {"sweeper": {"pruner": pruner}}})
    with caplog.at_level(logging.WARNING):
        groups = batched._groups([OmegaConf.create({"trial": n}) for n in range(2)])
    assert [len(g) for g in groups] == [2]
    assert ("trials fitted together are not pruned" in caplog.text) == said
