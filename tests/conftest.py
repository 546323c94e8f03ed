"""Shared fixtures; what the tests import lives in tests/helpers/."""

import pytest
import torch
from helpers.runs import compose_cfg

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
        return compose_cfg("train", [*(FAST if fast else []), *overrides], tmp_path / out)

    return make
