"""Composing configs in-process (Hydra's compose API) and running the entry points as a user
would (subprocesses)."""

import os
import subprocess
import sys
from pathlib import Path

from hydra import compose, initialize_config_dir
from omegaconf import open_dict

from deeptune.config import CONFIG_DIR

ROOT = Path(__file__).resolve().parents[2]


def compose_cfg(config_name: str, overrides: list[str], out_dir: Path):
    with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
        cfg = compose(config_name, overrides=overrides)
    with open_dict(cfg):  # paths.* point at Hydra's runtime, which compose does not set
        cfg.paths.output_dir = str(out_dir)
        cfg.paths.root_dir = str(ROOT)
        if (cfg.get("logger") or {}).get("mlflow") is not None:  # one store per test, not ROOT's
            cfg.logger.mlflow.tracking_uri = f"sqlite:///{out_dir.parent / 'mlruns.db'}"
            cfg.logger.mlflow.artifact_location = str(out_dir.parent / "mlartifacts")
    return cfg


def run_cli(*args, cwd: Path, env: dict | None = None, timeout=300):
    """Run `python <script> args...` in a subprocess, as a user would."""
    full_env = {**os.environ, "OMP_NUM_THREADS": "1", "WANDB_MODE": "disabled", **(env or {})}
    return subprocess.run(
        [sys.executable, *args],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
