"""Shared fixtures; what the tests import lives in tests/helpers/."""

import os

# One OpenMP thread per process unless the shell says otherwise, as CI runs. Set before torch is
# imported (OpenMP reads it once); inherited by what the tests start: `python train.py`, SLURM
# jobs, joblib workers.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import pytest  # noqa: E402
import torch  # noqa: E402
from helpers.runs import compose_cfg  # noqa: E402

torch.set_num_threads(1)  # two shared cores: more threads only fight each other

# Small, quiet runs; tests add their own overrides after these.
FAST = ["logger=csv", "trainer.max_epochs=1"]


def pytest_collection_modifyitems(items):
    # Under pytest-xdist, the jobs on the 2-CPU test cluster run from one worker at a time.
    for item in items:
        if item.get_closest_marker("slurm"):
            item.add_marker(pytest.mark.xdist_group("slurm"))


@pytest.fixture
def train_cfg(tmp_path):
    """train_cfg(*overrides) -> the composed train config writing into tmp_path/run."""

    def make(*overrides, fast=True, out="run"):
        # threads=1 even with fast=False: `auto` takes every core of the machine, and figures that
        # depend on the order of floating-point sums would differ from one machine to another.
        defaults = ["threads=1", *(FAST if fast else [])]
        return compose_cfg("train", [*defaults, *overrides], tmp_path / out)

    return make
