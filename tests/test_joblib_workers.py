"""hydra/launcher=joblib pays its fixed cost once: the worker processes start with the sweep and
import `preload`, every job runs on one of them, and a job whose config the sweeper composed
gets it as it is (deeptune_joblib_launcher._workers)."""

import gc
import logging
import os
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from hydra import compose, initialize_config_dir
from joblib import delayed
from omegaconf import OmegaConf

from deeptune.config import CONFIG_DIR
from deeptune.errors import ConfigError
from hydra_plugins.deeptune_basic_sweeper._compose_once import ComposedOnce
from hydra_plugins.deeptune_joblib_launcher import _workers
from hydra_plugins.deeptune_joblib_launcher.launcher import PRELOAD, GpuJoblibLauncher


def _seen(module: str, meet: str) -> tuple[int, bool]:
    """This process's pid and whether `module` was imported (and frozen out of the garbage
    collector's walks) before the job; it waits until two processes have taken a job of this
    launch, so that both workers are used."""
    preloaded = module in sys.modules and gc.get_freeze_count() > 0
    (Path(meet) / str(os.getpid())).touch()
    deadline = time.monotonic() + 120
    while len(list(Path(meet).iterdir())) < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    return os.getpid(), preloaded


def test_workers_start_preloaded_and_run_every_job(tmp_path):
    # `wave`: in the standard library, imported by nothing that loky or joblib load.
    assert "wave" not in sys.modules
    workers = _workers.Workers({"n_jobs": 2}, preload=("wave", "no_such_module_here"))
    pids = set()
    for launch in ("first", "second"):  # an Optuna sweep launches batch after batch
        (tmp_path / launch).mkdir()
        seen = workers(delayed(_seen)("wave", str(tmp_path / launch)) for _ in range(4))
        assert all(preloaded for _, preloaded in seen)  # before each worker's first job
        pids |= {pid for pid, _ in seen}
    # Two processes ran the 8 jobs, those that started with the sweep: reused, not restarted.
    assert len(pids) == 2 and os.getpid() not in pids
    assert set(workers.started) <= pids
    assert "wave" not in sys.modules  # imported there, not here


def test_one_job_at_a_time_starts_no_worker():
    workers = _workers.Workers({"n_jobs": 1}, preload=("wave",))
    assert workers.starting is None
    assert workers(delayed(os.getpid)() for _ in range(2)) == [os.getpid()] * 2


class _Loader:
    def load_sweep_config(self, master_config, sweep_overrides):
        return OmegaConf.create({"o": list(sweep_overrides)})


def test_a_job_composed_by_the_sweeper_is_sent_as_it_is(tmp_path, caplog):
    loader = ComposedOnce(_Loader())
    master = OmegaConf.create(
        {"hydra": {"sweep": {"dir": str(tmp_path)}, "hydra_logging": None, "verbose": False}}
    )
    loader.compose(master, ["a=1"])
    kept = loader.kept[(id(master), ("a=1",))][0]
    launcher = SimpleNamespace(
        config=master,
        joblib={"n_jobs": 2},
        hydra_context=SimpleNamespace(config_loader=loader),
        task_function=str,
    )
    with caplog.at_level(logging.INFO, logger=_workers.__name__):
        sent = _workers.launch(launcher, list, [["a=1"], ["a=2"]], initial_job_idx=3)
    # Logged by their job numbers (an Optuna sweep's second batch is trials 2 and 3), as
    # Hydra's basic launcher logs them.
    assert [r.getMessage() for r in caplog.records][-2:] == ["\t#3 : a=1", "\t#4 : a=2"]
    (_, first, _), (_, second, _) = sent  # delayed(run)(...): (function, args, kwargs)
    assert first[2:] == (3, ["a=1"], kept) and first[3] is not None
    assert second[2:] == (4, ["a=2"], None)  # not composed by the sweeper: by the worker
    assert first[0] == second[0] and first[1] is second[1]  # the shared state, pickled once
    assert loader.take(master, ["a=1"]) is None  # taken: the parent keeps no copy


def test_preload_is_in_the_config_and_checked():
    with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
        cfg = compose("train", ["hydra/launcher=joblib"], return_hydra_config=True)
    assert list(cfg.hydra.launcher.preload) == list(PRELOAD)
    for bad in ("torch", [1], 3):
        with pytest.raises(ConfigError, match=r"^hydra.launcher.preload=.* is invalid: a list"):
            GpuJoblibLauncher(preload=bad).setup(hydra_context=None, task_function=str, config=None)
