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
import yaml
from helpers.runs import ROOT

from deeptune.callbacks.nonfinite import NonFiniteLoss
from deeptune.train import train


def test_nan_loss_stops_at_once_with_a_reason(train_cfg, capsys):
    cfg = train_cfg("optimizer=sgd", "optimizer.lr=1e6", "trainer.max_epochs=5")
    with pytest.raises(NonFiniteLoss, match=r"at epoch 1, step \d+ .*lower optimizer.lr"):
        train(cfg)
    assert capsys.readouterr().out.splitlines()[-1] == f"run folder: {cfg.paths.output_dir}"
    record = json.loads((Path(cfg.paths.output_dir) / "metrics.json").read_text())
    assert record["status"] == "failed" and "training loss became nan" in record["reason"]
    assert "test" not in record  # nothing reported as if it had succeeded
    assert record["provenance"]["versions"]["torch"]  # which code and libraries failed


def test_gradient_clipping_keeps_the_same_run_finite(train_cfg):
    cfg = train_cfg(
        "optimizer=sgd", "optimizer.lr=5", "trainer.max_epochs=2", "trainer.gradient_clip_val=0.1"
    )
    assert train(cfg) > 0.1


def _run(cwd: Path, *extra, epochs=8, width=512, multirun=False) -> subprocess.Popen:
    args = [
        "logger=csv",
        "threads=1",
        f"trainer.max_epochs={epochs}",
        f"model.width={width}",
        "model.depth=3",
        "model.dropout=0.2",
        "~callbacks.progress_bar",
        *extra,
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "WANDB_MODE": "disabled"}
    log = (cwd / "console.log").open("a")  # a file: a full pipe would block the run
    return subprocess.Popen(
        [sys.executable, str(ROOT / "train.py"), *(["-m"] if multirun else []), *args],
        cwd=cwd,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        # A child of a background process may start with SIGINT ignored: give it Ctrl-C back.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )


@pytest.mark.slow
def test_kill_9_then_rerun_continues_to_the_same_result(tmp_path):
    """kill -9 after epoch 3's checkpoint, rerun the same command: it continues the killed run in
    its own folder and ends with exactly the metrics of an uninterrupted run. A SIGKILL loses
    what was not written: last.ckpt is written after every epoch here (every_s=0)."""
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    whole.mkdir(), killed.mkdir()
    every_epoch = "callbacks.last_checkpoint.every_s=0"
    reference = _run(whole, every_epoch)
    victim = _run(killed, every_epoch)
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
    rerun = _run(killed, every_epoch)
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


def _metrics(folder: Path) -> dict:
    return json.loads((Path(folder) / "metrics.json").read_text())


SAME = ("train", "val", "test", "epochs", "best_epoch")  # what an uninterrupted run reports


def _stop(process: subprocess.Popen, cwd: Path, signum: int, run: str, epochs: int) -> None:
    """Send `signum` once the `run` folder's metrics show `epochs` finished epochs (the rows
    with an epoch number): the signal then writes the last one to last.ckpt."""
    deadline = time.time() + 180
    while time.time() < deadline and process.poll() is None:
        logged = list(cwd.glob(f"{run}/csv/metrics.csv"))
        rows = logged[0].read_text().splitlines()[1:] if logged else []
        if len({row.split(",")[0] for row in rows} - {""}) >= epochs:
            break
        time.sleep(0.05)
    process.send_signal(signum)
    process.wait(timeout=120)


def _stderr_tail(cwd: Path) -> list[str]:
    return [ln for ln in (cwd / "console.log").read_text().splitlines() if ln.strip()]


@pytest.mark.slow
def test_sigterm_and_ctrl_c_stop_a_run_and_the_same_command_completes_it(tmp_path):
    """SIGTERM exits 143, Ctrl-C 130, each with one line and metrics.json status interrupted;
    the same command then finishes with the metrics of an uninterrupted run."""
    folders = {name: tmp_path / name for name in ("whole", "term", "int")}
    for folder in folders.values():
        folder.mkdir()
    reference = _run(folders["whole"])
    for name, signum, status in (("term", signal.SIGTERM, 143), ("int", signal.SIGINT, 130)):
        cwd = folders[name]
        victim = _run(cwd)
        _stop(victim, cwd, signum, "outputs/*/*", epochs=2)
        assert victim.returncode == status, _stderr_tail(cwd)[-20:]
        last = _stderr_tail(cwd)[-1]
        assert last.startswith(f"deeptune: stopped by {signal.Signals(signum).name} at epoch ")
        assert last.endswith("the same command continues it")
        assert "Traceback" not in (cwd / "console.log").read_text()
        (stopped,) = cwd.glob("outputs/*/*")
        assert f" in {stopped};" in last  # the run folder, on this outcome too
        record = _metrics(stopped)
        assert record["status"] == "interrupted" and record["signal"] == signal.Signals(signum).name
        assert record["resume_from"] == str(stopped / "checkpoints" / "last.ckpt")
        time.sleep(1.1)  # the rerun gets a run folder of its own (named by the second)
        assert _run(cwd).wait(timeout=300) == 0, _stderr_tail(cwd)[-20:]
        resumed = _metrics(stopped)
        assert resumed["status"] == "completed"
        folders[name] = stopped
    assert reference.wait(timeout=300) == 0
    (done,) = folders["whole"].glob("outputs/*/*")
    expected = _metrics(done)
    for name in ("term", "int"):
        for key in SAME:
            assert _metrics(folders[name])[key] == expected[key], (name, key)


def _sweep(cwd: Path) -> subprocess.Popen:
    return _run(cwd, "optimizer.lr=0.01,0.003,0.001", epochs=6, multirun=True)


@pytest.mark.slow
def test_a_stopped_multirun_continues_in_its_own_folder(tmp_path):
    """A signal stops a basic multirun in its second job: the same command reads the first job
    back, continues the second from its last.ckpt and runs the third, in the same sweep folder,
    to the metrics of an uninterrupted sweep."""
    whole = tmp_path / "whole"
    whole.mkdir()
    reference = _sweep(whole)
    for name, signum, status in (("term", signal.SIGTERM, 143), ("int", signal.SIGINT, 130)):
        cwd = tmp_path / name
        cwd.mkdir()
        victim = _sweep(cwd)
        _stop(victim, cwd, signum, "multirun/*/*/1", epochs=1)
        assert victim.returncode == status, _stderr_tail(cwd)[-20:]
        assert _stderr_tail(cwd)[-1].startswith(
            f"deeptune: stopped by {signal.Signals(signum).name}"
        )
        (sweep,) = cwd.glob("multirun/*/*")
        assert _metrics(sweep / "1")["status"] == "interrupted"
        assert not (sweep / "2").exists()  # the remaining job never started
        time.sleep(1.1)
        assert _sweep(cwd).wait(timeout=300) == 0, _stderr_tail(cwd)[-20:]
        assert list(cwd.glob("multirun/*/*")) == [sweep]  # continued in place
        assert "its metrics are read back" in (cwd / "console.log").read_text()
        assert reference.wait(timeout=300) == 0
        (done,) = whole.glob("multirun/*/*")
        for job in ("0", "1", "2"):
            for key in SAME:
                assert _metrics(sweep / job)[key] == _metrics(done / job)[key], (name, job, key)


def test_a_run_killed_after_its_last_epoch_resumes_with_its_train_metrics(train_cfg):
    """Killed after the last epoch's checkpoint but before metrics.json: the rerun trains no
    step, and still reports train figures (of the final weights), so train/acc can be the
    objective."""
    cfg = train_cfg("trainer.max_epochs=2", "optimized_metric=train/acc")
    train(cfg)
    out = Path(cfg.paths.output_dir)
    whole = _metrics(out)
    (out / "metrics.json").unlink()
    objective = train(cfg)
    resumed = _metrics(out)
    assert set(resumed["train"]) == set(whole["train"]) == {"acc", "f1", "loss"}
    assert objective == resumed["train"]["acc"] and 0.5 < objective <= 1
    for key in ("val", "test", "epochs", "best_epoch"):
        assert resumed[key] == whole[key], key


def test_an_interrupted_restarts_run_is_adopted_by_the_same_command(tmp_path, monkeypatch):
    """resume=auto finds a restarts=N run whose restart_1 was killed: it looks in restart_*/."""
    from hydra import compose, initialize_config_dir
    from hydra.core.hydra_config import HydraConfig

    from deeptune.config import CONFIG_DIR
    from deeptune.run.resume import interrupted_run

    overrides = ["restarts=3", "logger=csv"]
    with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
        cfg = compose("train", overrides=overrides, return_hydra_config=True)
    killed = tmp_path / "outputs" / "2026-01-01" / "10-00-00"
    for part, done in (("restart_0", True), ("restart_1", False)):
        (killed / part / "checkpoints").mkdir(parents=True)
        (killed / part / "checkpoints" / "last.ckpt").write_bytes(b"x")
        if done:
            (killed / part / "metrics.json").write_text('{"status": "completed"}')
    (killed / ".hydra").mkdir()
    (killed / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    here = tmp_path / "outputs" / "2026-01-01" / "10-05-00"
    HydraConfig.instance().set_config(cfg)
    try:
        cfg.paths.output_dir = str(here)
        assert interrupted_run(cfg) == killed
        (killed / "metrics.json").write_text('{"status": "interrupted", "signal": "SIGTERM"}')
        assert interrupted_run(cfg) == killed  # stopped by a signal: unfinished too
        (killed / "metrics.json").write_text('{"status": "completed"}')
        assert interrupted_run(cfg) is None
    finally:
        HydraConfig.instance().cfg = None


def test_a_completed_run_drops_last_ckpt_and_an_interrupted_one_keeps_it_and_resumes(
    train_cfg, monkeypatch, caplog
):
    """last.ckpt exists to resume: a run stopped at epoch 3 keeps it and the same config
    continues from it; once the run completed only best.ckpt is left (keep_last=false)."""
    import lightning as L

    from deeptune import builders
    from deeptune.errors import Interrupted

    class StopAtEpoch3(L.Callback):  # what SIGTERM does, through deeptune's handler
        def on_train_epoch_start(self, trainer, pl_module):
            if trainer.current_epoch == 2:
                raise Interrupted(signal.SIGTERM)

    cfg = train_cfg("trainer.max_epochs=4", "callbacks.early_stopping=null")
    out = Path(cfg.paths.output_dir)
    build = builders.callbacks
    monkeypatch.setattr(
        builders, "callbacks", lambda *a, **k: {**build(*a, **k), "stop": StopAtEpoch3()}
    )
    with pytest.raises(Interrupted):
        train(cfg)
    assert _metrics(out)["status"] == "interrupted"
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["best.ckpt", "last.ckpt"]

    monkeypatch.undo()
    train(cfg)
    assert f"resuming from {out / 'checkpoints' / 'last.ckpt'}" in caplog.text
    assert _metrics(out)["status"] == "completed" and _metrics(out)["epochs"] == 4
    assert [p.name for p in (out / "checkpoints").iterdir()] == ["best.ckpt"]


def test_a_truncated_last_checkpoint_falls_back_with_a_warning(train_cfg, caplog):
    cfg = train_cfg("trainer.max_epochs=3", "keep_last=true")  # a run killed at its very end
    train(cfg)
    out = Path(cfg.paths.output_dir)
    whole = _metrics(out)
    (out / "metrics.json").unlink()
    last = out / "checkpoints" / "last.ckpt"
    last.write_bytes(last.read_bytes()[:1000])  # a kill in the middle of writing it
    train(cfg)
    assert f"{last} is unreadable: cannot read the checkpoint: truncated" in caplog.text
    assert "resuming from" in caplog.text and str(out / "checkpoints" / "best.ckpt") in caplog.text
    assert _metrics(out)["status"] == "completed" and _metrics(out)["epochs"] == whole["epochs"]
    for ckpt in (out / "checkpoints").glob("*.ckpt"):
        ckpt.write_bytes(b"")  # nothing readable left: start afresh
    (out / "metrics.json").unlink()
    caplog.clear()
    train(cfg)
    assert "no readable checkpoint in" in caplog.text and "starts afresh" in caplog.text
    assert _metrics(out)["test"] == whole["test"]  # the same seed, from scratch


def test_an_unreadable_checkpoint_to_start_from_is_one_line_without_unsafe_advice(
    train_cfg, tmp_path
):
    from deeptune.errors import ConfigError

    bad = tmp_path / "cut.ckpt"
    bad.write_bytes(b"PK\x03\x04 cut short")
    for key in ("finetune.from", "ckpt_path"):
        with pytest.raises(ConfigError, match=rf"^{key}=.*cannot read the checkpoint") as err:
            train(train_cfg(f"{key}={bad}", out=key))
        assert "weights_only" not in str(err.value) and "\n" not in str(err.value)
