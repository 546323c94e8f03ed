"""Sweep presets and parallel local trials, as a user runs them."""

import json

import pytest
from helpers.runs import ROOT, run_cli

from deeptune.sweeps import summary
from deeptune.threads import cores


def _results(sweep_dir) -> dict[str, dict]:
    jobs = sorted(p for p in sweep_dir.iterdir() if p.name.isdigit())
    return {j.name: json.loads((j / "metrics.json").read_text()) for j in jobs}


@pytest.mark.slow
def test_grid_preset_in_parallel_matches_sequential(tmp_path):
    """hparams_search=grid through joblib with 2 jobs: each job gets half the cores (one on
    CI's two), and every trial's figures equal those of the same trial run one after another."""
    each = max(1, cores() // 2)  # what threads=auto gives each of the 2 jobs on this machine
    common = [
        "-m",
        "hparams_search=grid",
        "model.width=64",
        "model.depth=1",
        "logger=csv",
        "trainer.max_epochs=2",
    ]
    parallel = run_cli(
        str(ROOT / "train.py"),
        *common,
        "hydra/launcher=joblib",
        "hydra.launcher.n_jobs=2",
        f"hydra.sweep.dir={tmp_path}/par",
        cwd=tmp_path,
    )
    assert parallel.returncode == 0, parallel.stderr[-3000:]
    sequential = run_cli(  # as many threads: another summation order changes the last digits
        str(ROOT / "train.py"),
        *common,
        f"threads={each}",
        f"hydra.sweep.dir={tmp_path}/seq",
        cwd=tmp_path,
    )
    assert sequential.returncode == 0, sequential.stderr[-3000:]
    par, seq = _results(tmp_path / "par"), _results(tmp_path / "seq")
    assert sorted(par) == ["0", "1", "2"]  # sgd, momentum, adam
    assert {m["threads"] for m in par.values()} == {each}
    for job in par:
        assert par[job]["val"] == seq[job]["val"] and par[job]["test"] == seq[job]["test"]


def test_a_grid_multirun_ends_with_its_best_jobs_and_where_the_report_is(tmp_path):
    """Registered in configs/hydra: the basic sweeper's multirun ends with the summary, and
    its jobs keep one checkpoint each (their last.ckpt went once they completed)."""
    sweep = tmp_path / "sweep"
    args = ["-m", "optimizer=sgd,adam", "logger=csv", "trainer.max_epochs=1"]
    args += ["callbacks.progress_bar=null", "callbacks.model_summary=null"]
    ran = run_cli(str(ROOT / "train.py"), *args, f"hydra.sweep.dir={sweep}", cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr[-3000:]
    size = summary.human_size(summary.folder_size(sweep))
    lines = ran.stdout.splitlines()
    start = lines.index(f"sweep: 2 jobs (completed 2), {size} in {sweep}")
    assert lines[start + 1] == "best 2 of 2 jobs by val/acc (higher is better)"
    rows = {line.split()[0]: line.split()[1:] for line in lines[start + 4 : start + 6]}
    metrics = _results(sweep)
    for job, optimizer in (("0", "sgd"), ("1", "adam")):
        assert rows[job] == [f"{metrics[job]['val']['acc']:.4f}", f"optimizer={optimizer}"]
    assert lines[-1] == f"full report (report.md, plots): deeptune-report {sweep}"
    assert sorted(p.name for p in sweep.glob("*/checkpoints/*")) == ["best.ckpt", "best.ckpt"]
