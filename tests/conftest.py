"""Shared fixtures; what the tests import lives in tests/helpers/."""

import pytest
import torch
from helpers.runs import compose_cfg

torch.set_num_threads(1)  # two shared cores: more threads only fight each other

# Small, quiet runs; tests add their own overrides after these.
FAST = ["logger=csv", "trainer.max_epochs=1"]


@pytest.fixture
def train_cfg(tmp_path):
    """train_cfg(*overrides) -> the composed train config writing into tmp_path/run."""

    def make(*overrides, fast=True, out="run"):
        return compose_cfg("train", [*(FAST if fast else []), *overrides], tmp_path / out)

    return make
