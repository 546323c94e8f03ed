"""A user's own components (issue 16): a LightningDataModule and an nn.Module from a package of
the user's, picked by `data._target_` / `model._target_` or a config folder of their own, through
restarts, ensembles, K folds, the final-model report, checkpoints and predict."""

import contextlib
import json
import sys
import textwrap

import numpy as np
import pytest
import torch
from helpers.runs import ROOT, compose_cfg, run_cli

import deeptune
from deeptune.diagnostics.overfit import OverfitFailed
from deeptune.errors import ConfigError
from deeptune.eval import evaluate
from deeptune.train import train

DATA = '''
"""Two Gaussian blobs in `features` dimensions: a data module that follows deeptune's contract."""
import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Sampler, TensorDataset


class EpochSampler(Sampler):
    """A permutation that depends on (seed, epoch) only: Lightning calls set_epoch."""

    def __init__(self, n, seed):
        self.n, self.seed, self.epoch = n, seed, 0

    def set_epoch(self, epoch):
        self.epoch = epoch

    def __iter__(self):
        g = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        return iter(torch.randperm(self.n, generator=g).tolist())

    def __len__(self):
        return self.n


class Blobs(L.LightningDataModule):
    task = "classification"
    classes = ("left", "right")

    def __init__(self, n=240, features=6, batch_size=32, seed=0, fold=None):
        super().__init__()  # cheap: reads nothing, so a checkpoint can rebuild it
        self.n, self.features, self.batch_size = n, features, batch_size
        self.seed, self.fold = seed, fold
        self.mean = None  # the fitted state: the training split's mean

    @property
    def input_shape(self):
        return (self.features,)

    def setup(self, stage=None):
        if hasattr(self, "splits"):  # Lightning sets it up again inside trainer.fit
            return
        g = torch.Generator().manual_seed(0)
        y = torch.arange(self.n) % 2
        x = torch.randn(self.n, self.features, generator=g) + 2.5 * y[:, None]
        idx = torch.arange(self.n)
        test, rest = idx[idx % 5 == 0], idx[idx % 5 != 0]
        k, folds = self.fold or (0, 4)
        part = torch.arange(len(rest)) % folds
        val, train = rest[part == k], rest[part != k]
        self.mean = x[train].mean(0)
        self.splits = {s: TensorDataset(x[i] - self.mean, y[i]) for s, i in
                       (("train", train), ("val", val), ("test", test))}

    def train_dataloader(self):
        data = self.splits["train"]
        return DataLoader(data, self.batch_size, sampler=EpochSampler(len(data), self.seed))

    def val_dataloader(self):
        return DataLoader(self.splits["val"], 64)

    def test_dataloader(self):
        return DataLoader(self.splits["test"], 64)

    def state_dict(self):
        return {"mean": self.mean.tolist()}

    def load_state_dict(self, state):
        self.mean = torch.tensor(state["mean"])

    def predict_inputs(self, raw):
        return torch.as_tensor(np.asarray(raw), dtype=torch.float32) - self.mean


class NoFold(Blobs):
    """Splits itself one way only, and cannot read raw inputs."""

    predict_inputs = None

    def __init__(self, n=240, batch_size=32, seed=0):
        super().__init__(n=n, batch_size=batch_size, seed=seed)


class Ramp(Blobs):
    """A regression: the target is the sum of the features."""

    task, classes = "regression", ()

    def setup(self, stage=None):
        super().setup(stage)
        for name, data in self.splits.items():
            x, _ = data.tensors
            self.splits[name] = TensorDataset(x, x.sum(1))


class NoTask(Blobs):
    task = None


class BadShape(Blobs):
    input_shape = (0, 6)
'''

NET = '''
"""A network of the user's: input_shape and outputs come from the data module."""
import math

from torch import nn


class TinyNet(nn.Module):
    def __init__(self, input_shape, outputs, hidden=16):
        super().__init__()
        width = math.prod(input_shape)
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(width, hidden), nn.ReLU())
        self.head = nn.Linear(hidden, outputs)

    def forward(self, x):
        return self.head(self.body(x))
'''

CONFIGS = {
    "data/mine.yaml": "_target_: mypkg.data.Blobs\nn: 240\nbatch_size: 32\n",
    "model/mynet.yaml": "_target_: mypkg.net.TinyNet\nhidden: 16\n",
}


@pytest.fixture(scope="module")
def user(tmp_path_factory):
    """A package `mypkg` (data.py, net.py) and a config folder, importable for the module."""
    root = tmp_path_factory.mktemp("user")
    (pkg := root / "mypkg").mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "data.py").write_text(textwrap.dedent(DATA))
    (pkg / "net.py").write_text(textwrap.dedent(NET))
    for name, text in CONFIGS.items():
        (root / "configs" / name).parent.mkdir(parents=True, exist_ok=True)
        (root / "configs" / name).write_text(text)
    sys.path.insert(0, str(root))
    yield root
    sys.path.remove(str(root))
    for name in [m for m in sys.modules if m == "mypkg" or m.startswith("mypkg.")]:
        del sys.modules[name]


@pytest.fixture
def user_cfg(train_cfg, user):
    """train_cfg with the user's config folder on Hydra's search path."""

    def make(*overrides, **kwargs):
        searchpath = f"hydra.searchpath=[file://{user / 'configs'}]"
        return train_cfg(searchpath, "callbacks=none", *overrides, **kwargs)

    return make


def _metrics(folder):
    return json.loads((folder / "metrics.json").read_text())


def test_restarts_ensemble_report_and_predict(user_cfg, tmp_path):
    cfg = user_cfg(
        "data=mine",
        "model=mynet",
        "restarts=2",
        "ensemble=mean_prob",
        "callbacks=default",
        "report.confusion=true",
        "report.tsne=true",
        "report.tsne_samples=40",
        "trainer.max_epochs=2",
    )
    train(cfg)
    run = tmp_path / "run"
    m = _metrics(run)
    spread = m["restarts"]["val"]["acc"]
    assert m["restarts"]["n"] == 2 and len(spread["runs"]) == 2 and spread["std"] >= 0
    assert m["ensemble"]["method"] == "mean_prob" and 0 <= m["ensemble"]["test"]["acc"] <= 1
    first = _metrics(run / "restart_0")
    assert first["report"]["classes"].keys() == {"left", "right"}
    assert (run / "restart_0" / "tsne.png").is_file()
    assert "grad_health" in first  # gradient health on a network of the user's

    # A saved run read later with a user's target: trust_config, named in the refusal
    ckpt = run / "restart_0" / "checkpoints" / "best.ckpt"
    with pytest.raises(ConfigError, match=r"data\._target_='mypkg.data.Blobs'.*trust_config=True"):
        deeptune.load(ckpt)
    model = deeptune.load(ckpt, trust_config=True)
    assert model.task == "classification" and model.classes == ["left", "right"]
    raw = np.stack([np.full(6, -1.0), np.full(6, 3.5)])  # raw inputs, centred by predict_inputs
    assert list(model.predict(raw)) == ["left", "right"]
    assert model.predict_proba(torch.tensor(raw, dtype=torch.float32)).shape == (2, 2)
    ensemble = deeptune.load(run / "ensemble.yaml", trust_config=True)
    assert list(ensemble.predict(raw)) == ["left", "right"]
    # eval.py on the checkpoint: the same rule, then the same test figure
    tested = first["test"]["acc"]
    with pytest.raises(ConfigError, match=r"data\._target_=.*trust_config=true$"):
        evaluate(compose_cfg("eval", [f"ckpt_path={ckpt}"], tmp_path / "eval"))
    again = evaluate(
        compose_cfg("eval", [f"ckpt_path={ckpt}", "trust_config=true"], tmp_path / "e")
    )
    assert again == pytest.approx(tested, abs=1e-6)


def test_deeptune_mlp_on_a_user_data_module_trains_stepwise(user_cfg, tmp_path):
    cfg = user_cfg("data=mine", "model=mlp", "model.width=16", "stepwise.strategy=lower_first")
    train(cfg)
    m = _metrics(tmp_path / "run")
    assert m["status"] == "completed" and m["stepwise"]["strategy"] == "lower_first"


def test_user_network_on_the_tensor_path(user_cfg, tmp_path):
    train(user_cfg("data=moons", "model=mynet", "data.source.n_samples=200"))
    assert _metrics(tmp_path / "run")["status"] == "completed"
    with pytest.raises(ConfigError, match=r"^finetune.freeze=\[0\] is invalid: .*TinyNet .*none$"):
        train(user_cfg("data=moons", "model=mynet", "finetune.freeze=[0]", out="frozen"))


@pytest.mark.parametrize("preset", ["overfit", "lr_find"])
def test_debug_presets_on_user_components(user_cfg, tmp_path, preset):
    cfg = user_cfg(
        "data=mine", "model=mynet", "callbacks=default", f"debug={preset}", "trainer.max_epochs=40"
    )
    # 40 epochs: a verdict either way (a FAIL raises, as train.py then exits with status 1)
    with contextlib.suppress(OverfitFailed):
        train(cfg)
    m = _metrics(tmp_path / "run")
    assert m["status"] == "completed"
    assert "final_loss" in m["overfit"] if preset == "overfit" else "suggestion" in m["lr_find"]


def test_a_regression_module(user_cfg, tmp_path):
    ramp = ["data=mine", "model=mynet", "data._target_=mypkg.data.Ramp"]
    train(user_cfg(*ramp, "optimized_metric=val/mse", "optimized_mode=min"))
    assert "r2" in _metrics(tmp_path / "run")["test"]
    with pytest.raises(
        ConfigError, match=r"^optimized_metric='val/acc' is invalid: Ramp is a regr"
    ):
        train(user_cfg(*ramp, out="acc"))
    votes = [*ramp, "optimized_metric=val/mse", "optimized_mode=min", "restarts=2"]
    votes += ["ensemble=mean_prob", "callbacks=default"]
    with pytest.raises(
        ConfigError, match=r"^ensemble='mean_prob' is invalid: Ramp is a regression"
    ):
        train(user_cfg(*votes, out="votes"))


def test_kfold_needs_a_fold_parameter(user_cfg, tmp_path):
    refused = user_cfg("data=mine", "model=mynet", "data._target_=mypkg.data.NoFold", "cv.folds=3")
    with pytest.raises(ConfigError) as err:
        train(refused)
    assert str(err.value) == (
        "cv.folds=3 is invalid: NoFold cannot be split by index (its constructor takes no "
        "fold=(k, K)); add a fold parameter that picks fold k of K as validation, or use "
        "cv.folds=1"
    )
    train(user_cfg("data=mine", "model=mynet", "cv.folds=2", out="cv"))
    m = _metrics(tmp_path / "cv")
    assert m["cv"]["folds"] == 2 and len(m["cv"]["val"]["acc"]["runs"]) == 2


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("NoTask", r"^data\._target_='mypkg.data.NoTask' is invalid: NoTask\.task is missing"),
        (
            "BadShape",
            r"^data\._target_='mypkg.data.BadShape' is invalid: BadShape\.input_shape is ",
        ),
    ],
)
def test_a_module_that_breaks_the_contract_is_one_line(user_cfg, target, message):
    cfg = user_cfg("data=mine", "model=mynet", f"data._target_=mypkg.data.{target}")
    with pytest.raises(ConfigError, match=message) as err:
        train(cfg)
    assert "\n" not in str(err.value)


def test_shared_data_keys_a_module_does_not_take(user_cfg):
    cfg = user_cfg("data=mine", "model=mynet", "data.val_fraction=0.3")
    with pytest.raises(ConfigError, match=r"^data.val_fraction=0.3 is invalid: Blobs takes no"):
        train(cfg)


def test_predict_without_predict_inputs(user_cfg, tmp_path):
    train(
        user_cfg("data=mine", "model=mynet", "data._target_=mypkg.data.NoFold", "callbacks=default")
    )
    model = deeptune.load(tmp_path / "run" / "checkpoints" / "best.ckpt", trust_config=True)
    with pytest.raises(ConfigError, match=r"NoFold has no predict_inputs\(raw\)"):
        model.predict([[0.0] * 6])
    assert model.predict(torch.zeros(3, 6)).shape == (3,)


def test_command_line_with_a_config_folder_and_a_multirun(user, tmp_path):
    env = {"PYTHONPATH": f"{user}:{ROOT / 'src'}"}
    args = ["--config-dir", str(user / "configs"), "data=mine", "model=mynet", "logger=csv"]
    args += ["callbacks=none", "threads=1", "trainer.max_epochs=1", "restarts=2"]
    result = run_cli(
        str(ROOT / "train.py"),
        "-m",
        *args,
        "model.hidden=8,16",
        f"hydra.sweep.dir={tmp_path / 'sweep'}",
        cwd=tmp_path,
        env=env,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    for job in ("0", "1"):
        m = _metrics(tmp_path / "sweep" / job)
        assert m["restarts"]["n"] == 2 and "mean" in m["restarts"]["val"]["acc"]
    print(result.stdout[-1500:])


@pytest.mark.slow
def test_ddp_on_two_cpu_processes_with_a_config_folder(user, tmp_path):
    """The child rank composes the job from the user's config folder too (run.ddp)."""
    env = {"PYTHONPATH": f"{user}:{ROOT / 'src'}"}
    result = run_cli(
        str(ROOT / "train.py"),
        *("--config-dir", str(user / "configs"), "data=mine", "model=mynet", "logger=csv"),
        *("trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2", "trainer.max_epochs=2"),
        f"hydra.run.dir={tmp_path / 'ddp'}",
        cwd=tmp_path,
        env=env,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert _metrics(tmp_path / "ddp")["status"] == "completed"
    log = (tmp_path / "ddp" / "train.log").read_text()
    assert "rank 1 of 2" in log and "rank 0 of 2" in log


def test_an_ensemble_walks_a_shuffling_loader_once_for_all_members():
    """Each member's output stays paired with the others' and with its target, however the
    module's evaluation loader orders (or reshuffles) its samples."""
    from deeptune.run.ensemble import split_outputs

    class Reshuffled:  # a component module whose test loader shuffles on every walk
        x, y = torch.arange(12.0).reshape(12, 1), torch.arange(12)

        def test_dataloader(self):
            idx = torch.randperm(12)
            return [(self.x[idx[i : i + 4]], self.y[idx[i : i + 4]]) for i in range(0, 12, 4)]

    members = [lambda x: x.repeat(1, 3), lambda x: 2 * x.repeat(1, 3)]
    out, y = split_outputs(members, Reshuffled(), "test")
    assert out.shape == (2, 12, 3)
    assert torch.equal(out[0, :, 0], y.float()) and torch.equal(out[1, :, 0], 2 * y.float())
