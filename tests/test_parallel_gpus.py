"""hydra/launcher=joblib: each worker process of a parallel sweep runs on a GPU of its own (or
`trials_per_gpu` workers share one), by its CUDA_VISIBLE_DEVICES. The device lists here are fake:
trainer=cpu, and a CPU torch build ignores the variable."""

import json
import os
import re

import pytest
from helpers.runs import ROOT, run_cli
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from deeptune.config import CONFIG_DIR
from deeptune.errors import ConfigError
from hydra_plugins.deeptune_joblib_launcher import _gpus
from hydra_plugins.deeptune_joblib_launcher.launcher import GpuJoblibLauncher

PROBE = str(ROOT / "tests" / "helpers" / "gpu_probe.py")
LINE = re.compile(r"job (\d+) on GPU (\S+) \(CUDA_VISIBLE_DEVICES=(\S*)\): worker slot (\d+)")


def test_slots_map_to_gpus():
    assert [_gpus.gpu_of(s, ["0", "1"], 1) for s in range(5)] == ["0", "1", "0", "1", "0"]
    assert [_gpus.gpu_of(s, ["0", "1"], 2) for s in range(5)] == ["0", "0", "1", "1", "0"]
    assert [_gpus.gpu_of(s, ["3", "5", "7"], 2) for s in range(6)] == ["3", "3", "5", "5", "7", "7"]


def test_a_slot_is_held_until_its_process_lets_go(tmp_path, monkeypatch):
    monkeypatch.setattr(_gpus, "_worker", {})
    first = _gpus.claim_slot(tmp_path)
    held = _gpus._worker["lock"]
    assert (first, _gpus.claim_slot(tmp_path)) == (0, 1)
    os.close(held)  # as when the process that held slot 0 exits
    assert _gpus.claim_slot(tmp_path) == 0
    os.close(_gpus._worker["lock"])


def test_device_list(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3, 5")
    assert _gpus.visible_devices() == ["3", "5"]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert _gpus.visible_devices() == []
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    torch = pytest.importorskip("torch")
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(_gpus.os.path, "exists", lambda path: True)
    assert _gpus.visible_devices() == ["0", "1"]
    monkeypatch.setattr(_gpus.os.path, "exists", lambda path: False)
    monkeypatch.setattr(_gpus.sys, "platform", "linux")
    assert _gpus.visible_devices() == []  # no GPU driver: torch is not asked


def test_joblib_is_deeptunes_launcher_and_checks_trials_per_gpu(monkeypatch):
    with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
        cfg = compose("train", ["hydra/launcher=joblib"], return_hydra_config=True)
    launcher = cfg.hydra.launcher
    assert launcher._target_.endswith("GpuJoblibLauncher")
    assert (launcher.trials_per_gpu, launcher.n_jobs, launcher.prefer) == (1, -1, "processes")

    def setup(launcher):
        launcher.setup(hydra_context=None, task_function=str, config=None)
        return launcher.task_function

    for bad in (0, "2", 1.5, True):
        with pytest.raises(ConfigError, match=r"trials_per_gpu=.* is invalid: an integer >= 1$"):
            setup(GpuJoblibLauncher(trials_per_gpu=bad))
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")  # no device list: the task runs as it is
    assert setup(GpuJoblibLauncher(n_jobs=2, preload=[])) is str
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")
    wrapped = setup(GpuJoblibLauncher(n_jobs=2))
    assert isinstance(wrapped, _gpus.OnGpu) and wrapped.devices == ["0", "1"]
    # n_jobs=1: joblib runs each job in the sweep's own process, whose GPUs stay all visible
    assert wrapped(7) == "7" and os.environ["CUDA_VISIBLE_DEVICES"] == "0,1"
    two = OmegaConf.create({"trainer": {"devices": 2}})  # a DDP trial wants two GPUs
    with pytest.raises(ConfigError, match=r"^trainer.devices=2 is invalid: .* one GPU"):
        GpuJoblibLauncher(n_jobs=2).setup(hydra_context=None, task_function=str, config=two)
    GpuJoblibLauncher(n_jobs=1).setup(hydra_context=None, task_function=str, config=two)


def _probe(tmp_path, *overrides, devices: str):
    done = run_cli(
        PROBE,
        "-m",
        "hydra/launcher=joblib",
        "hydra.launcher.n_jobs=2",
        f"hydra.sweep.dir={tmp_path}",
        *overrides,
        cwd=tmp_path,
        env={"CUDA_VISIBLE_DEVICES": devices},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return [json.loads(p.read_text()) for p in sorted(tmp_path.glob("*/probe.json"))]


def test_trials_per_gpu_puts_two_workers_on_one_gpu(tmp_path):
    seen = _probe(tmp_path, "+x=1,2,3,4", "hydra.launcher.trials_per_gpu=2", devices="3,5")
    assert len(seen) == 4 and len({s["pid"] for s in seen}) == 2
    assert {s["CUDA_VISIBLE_DEVICES"] for s in seen} == {"3"}


@pytest.mark.slow
def test_no_device_list_changes_nothing(tmp_path):
    seen = _probe(tmp_path, "+x=1,2", devices="")
    assert [s["CUDA_VISIBLE_DEVICES"] for s in seen] == ["", ""]
    assert not (tmp_path / _gpus.SLOTS).exists()


@pytest.mark.slow
def test_parallel_trials_get_a_gpu_each(tmp_path):
    """4 trials, 2 at a time, fake GPUs 0 and 1: each worker keeps one GPU, the two differ, and
    each job's log says which."""
    done = run_cli(
        str(ROOT / "train.py"),
        "-m",
        "data=moons",
        "trainer=cpu",
        "logger=csv",
        "trainer.max_epochs=1",
        "seed=1,2,3,4",
        "hydra/launcher=joblib",
        "hydra.launcher.n_jobs=2",
        f"hydra.sweep.dir={tmp_path}",
        cwd=tmp_path,
        env={"CUDA_VISIBLE_DEVICES": "0,1"},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    jobs = {}
    for job in range(4):
        (line,) = LINE.findall((tmp_path / str(job) / "train.log").read_text())
        num, gpu, env, slot = line
        assert (int(num), env) == (job, gpu)
        jobs[job] = (int(slot), gpu)
    gpu_of_slot = dict(jobs.values())
    assert len(gpu_of_slot) == len(set(jobs.values())) == 2  # two workers, one GPU each
    assert sorted(gpu_of_slot.values()) == ["0", "1"]
