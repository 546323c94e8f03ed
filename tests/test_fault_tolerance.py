"""Runs that diverge stop with a reason; runs that are killed continue where they stopped."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from helpers.runs import ROOT

from deeptune.callbacks.nonfinite import NonFiniteLoss
from deeptune.train import train


def test_nan_loss_stops_at_once_with_a_reason(train_cfg):
    cfg = train_cfg("optimizer=sgd", "optimizer.lr=1e6", "trainer.max_epochs=5")
    with pytest.raises(NonFiniteLoss, match=r"at epoch 1, step \d+ .*lower optimizer.lr"):
        train(cfg)
    record = json.loads((Path(cfg.paths.output_dir) / "metrics.json").read_text())
    assert record["status"] == "failed" and "training loss became nan" in record["reason"]
    assert "test" not in record  # nothing reported as if it had succeeded


def test_gradient_clipping_keeps_the_same_run_finite(train_cfg):
    cfg = train_cfg(
        "optimizer=sgd", "optimizer.lr=5", "trainer.max_epochs=2", "trainer.gradient_clip_val=0.1"
    )
    assert train(cfg) > 0.1


def _run(cwd: Path, *extra) -> subprocess.Popen:
    args = [
        "logger=csv",
        "threads=1",
        "trainer.max_epochs=8",
        "model.width=512",
        "model.depth=3",
        "model.dropout=0.2",
        "~callbacks.progress_bar",
        *extra,
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "WANDB_MODE": "disabled"}
    log = (cwd / "console.log").open("a")  # a file: a full pipe would block the run
    return subprocess.Popen(
        [sys.executable, str(ROOT / "train.py"), *args],
        cwd=cwd,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )


@pytest.mark.slow
def test_kill_9_then_rerun_continues_to_the_same_result(tmp_path):
    """kill -9 after epoch 3's checkpoint, rerun the same command: it continues the killed run in
    its own folder and ends with exactly the metrics of an uninterrupted run."""
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    whole.mkdir(), killed.mkdir()
    reference = _run(whole)
    victim = _run(killed)
    deadline = time.time() + 120
    while time.time() < deadline:
        lasts = list(killed.glob("outputs/*/*/checkpoints/last.ckpt"))
        rows = list(killed.glob("outputs/*/*/csv/metrics.csv"))
        if lasts and rows and rows[0].read_text().count("\n") >= 6:  # a few epochs in
            break
        time.sleep(0.05)
    os.kill(victim.pid, signal.SIGKILL)
    victim.wait()
    (interrupted,) = killed.glob("outputs/*/*")
    assert not (interrupted / "metrics.json").exists()

    time.sleep(1.1)  # the rerun gets a run folder of its own (named by the second)
    rerun = _run(killed)
    assert rerun.wait(timeout=300) == 0, (killed / "console.log").read_text()[-3000:]
    assert reference.wait(timeout=300) == 0
    assert "continuing the interrupted run" in (killed / "console.log").read_text()

    (done,) = whole.glob("outputs/*/*/metrics.json")
    expected = json.loads(done.read_text())
    resumed = json.loads((interrupted / "metrics.json").read_text())
    for key in ("train", "val", "test", "epochs", "best_epoch"):
        assert resumed[key] == expected[key], key
    logged = pd.read_csv(interrupted / "csv" / "metrics.csv")  # the history survives the restart
    assert set(range(8)) <= set(logged["epoch"].dropna().astype(int))  # + the final test row
