"""The sweeper's up-front check composes each job's config; the launcher reuses it."""

import pickle

from omegaconf import OmegaConf

from hydra_plugins.deeptune_basic_sweeper._compose_once import ComposedOnce


class Loader:
    def __init__(self):
        self.calls = []

    def load_sweep_config(self, master_config, sweep_overrides):
        self.calls.append(list(sweep_overrides))
        return OmegaConf.create({"o": list(sweep_overrides), "hydra": {"job": {"num": None}}})


def test_each_job_composed_once_and_gets_its_own_config():
    inner, master = Loader(), OmegaConf.create({})
    loader = ComposedOnce(inner)
    batch = [["a=1"], ["a=2"], ["a=1"]]  # a repeated job gets two configs
    for job in batch:
        loader.compose(master, job)
    got = [loader.load_sweep_config(master, job) for job in batch]
    assert inner.calls == batch  # no second composition
    assert got[0] is not got[2] and got[0].o == ["a=1"] and got[1].o == ["a=2"]
    loader.load_sweep_config(master, ["a=1"])  # nothing kept any more: composed afresh
    assert len(inner.calls) == 4


def test_pickled_loader_carries_no_kept_configs():
    loader = ComposedOnce(Loader())
    loader.compose(OmegaConf.create({}), ["a=1"])
    copy = pickle.loads(pickle.dumps(loader))
    assert not copy.kept and copy.composed == 0
