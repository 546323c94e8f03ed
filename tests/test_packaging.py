"""deeptune installs like a library: a wheel carries its configs, so `deeptune-train` runs from
any folder of a fresh virtual environment, and a user's own config folder plugs in."""

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from helpers.runs import ROOT

TORCH = "torch==2.13.0"  # the CPU build CI installs first (README: Set-up)

EXPERIMENT = """\
# @package _global_
defaults:
  - override /data: moons
model:
  depth: 3
  width: 16
trainer:
  max_epochs: 1
"""


def _run(cmd: list[str], cwd: Path, env: dict, timeout: int) -> subprocess.CompletedProcess:
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{cmd} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


@pytest.mark.slow
def test_a_wheel_trains_from_any_folder_with_its_own_configs(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VIRTUAL_ENV", "PYTHON"))} | {
        "OMP_NUM_THREADS": "1",
        "WANDB_MODE": "disabled",
    }
    wheels = tmp_path / "wheels"
    _run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(wheels), str(ROOT)],
        tmp_path,
        env,
        600,
    )
    (wheel,) = wheels.glob("deeptune-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "deeptune/configs/train.yaml" in names
    assert "deeptune/configs/hydra/default.yaml" in names
    assert "hydra_plugins/deeptune_optuna_sweeper/sweeper.py" in names

    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", str(venv)], tmp_path, env, 120)
    python, train = venv / "bin" / "python", venv / "bin" / "deeptune-train"
    # --no-compile: byte-compiling every dependency costs a minute of CPU; the runs below
    # compile only what they import.
    install = [str(python), "-m", "pip", "install", "-q", "--no-compile", TORCH, str(wheel)]
    _run(install, tmp_path, env, 900)

    work = tmp_path / "elsewhere"  # no checkout, no configs/ folder: only the installed package
    (work / "my_configs" / "experiment").mkdir(parents=True)
    (work / "my_configs" / "experiment" / "mine.yaml").write_text(EXPERIMENT)
    where = _run([str(python), "-c", "import deeptune; print(deeptune.__file__)"], work, env, 60)
    assert where.stdout.startswith(str(venv)), where.stdout  # the wheel's copy, not the checkout

    args = ["logger=csv"]
    _run([str(train), "trainer.max_epochs=1", *args, "hydra.run.dir=run1"], work, env, 300)
    assert (work / "run1" / "metrics.json").is_file()

    _run(
        [str(train), "--config-dir", "my_configs", "experiment=mine", *args, "hydra.run.dir=run2"],
        work,
        env,
        300,
    )
    saved = (work / "run2" / "config.yaml").read_text()
    assert "deeptune.data.sources.moons" in saved and "depth: 3" in saved


def test_choices_of_the_users_config_folders_are_allowed(tmp_path):
    from deeptune.config import check_group_overrides, user_config_dirs
    from deeptune.errors import ConfigError

    (tmp_path / "experiment").mkdir()
    (tmp_path / "experiment" / "mine.yaml").write_text(EXPERIMENT)
    for argv in (
        ["--config-dir", str(tmp_path), "experiment=mine"],
        [f"--config-dir={tmp_path}", "experiment=mine"],
        ["-cd", str(tmp_path), "experiment=mine"],
        [f"hydra.searchpath=[file://{tmp_path}]", "experiment=mine"],
    ):
        dirs = user_config_dirs(argv)
        assert dirs == [tmp_path], argv
        check_group_overrides([a for a in argv if "=" in a and "config-dir" not in a], dirs)
    assert user_config_dirs(["hydra.searchpath=[pkg://deeptune.configs]"])[0].name == "configs"
    with pytest.raises(ConfigError, match=r"^experiment='mine' is invalid: choose one of .*"):
        check_group_overrides(["experiment=mine"])  # without the folder it is a typo


def test_a_launcher_without_its_extra_is_one_line(monkeypatch):
    from deeptune.config import check_group_overrides
    from deeptune.errors import ConfigError

    monkeypatch.setitem(sys.modules, "hydra_plugins.hydra_submitit_launcher", None)
    for choice in ("slurm", "slurm_local"):
        with pytest.raises(
            ConfigError, match=rf'^hydra/launcher=.{choice}. is invalid: .*"deeptune\[slurm\]"$'
        ):
            check_group_overrides([f"hydra/launcher={choice}"])
    check_group_overrides(["hydra/launcher=joblib"])  # a core dependency
