"""hydra/launcher=batched: a sweep's jobs that differ only in per-member knobs trained as one
batched fit, their folders and metrics as the basic launcher leaves them."""

import json
from pathlib import Path

import pytest
from helpers.runs import ROOT, run_cli

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
        assert a["seed"] == b["seed"] and a["epochs"] == b["epochs"]
        assert a["best_epoch"] == b["best_epoch"]
        for split in ("val", "test"):
            assert a[split]["acc"] == pytest.approx(b[split]["acc"], abs=1e-6)
            assert a[split]["loss"] == pytest.approx(b[split]["loss"], abs=1e-4)
    # the same job files (a batched member writes no per-epoch CSV: its fit is not Lightning's)
    missing = {f for f in _files(basic) - _files(batched) if "/csv/" not in f}
    assert not missing, sorted(missing)
