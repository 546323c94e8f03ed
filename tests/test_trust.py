"""A saved run folder is data, never code: crafted config.yaml files and checkpoints given to
eval.py, to ensembles, to finetune.from and to the lab's analysis run nothing (deeptune.trust)."""

import json
import os
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from helpers.runs import ROOT, compose_cfg, run_cli

from deeptune.errors import ConfigError
from deeptune.eval import evaluate
from deeptune.lab.experiments.initialization import activation_scales
from deeptune.lab.results import evaluate as lab_evaluate
from deeptune.train import train


class Payload:
    """Unpickled, it creates the file `marker`: proof that a file's author ran code."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.fixture(scope="module")
def legit_run(tmp_path_factory):
    """A real run folder (2 restarts, an ensemble) to copy and tamper with."""
    out = tmp_path_factory.mktemp("legit")
    cfg = compose_cfg(
        "train",
        # keep_last: the lab's analyses read a run's final weights (last.ckpt)
        [
            "logger=csv",
            "trainer.max_epochs=1",
            "restarts=2",
            "ensemble=mean_prob",
            "keep_last=true",
        ],
        out / "run",
    )
    train(cfg)
    return out / "run"


def _payloads(tmp: Path, marker: Path) -> dict[str, tuple[str, dict]]:
    """name -> (key, node): five targets that would run the payload or write a file."""
    pickled = tmp / "payload.pkl"
    pickled.write_bytes(pickle.dumps(Payload(marker)))
    array = tmp / "payload.npy"
    np.save(array, np.array([Payload(marker)], dtype=object), allow_pickle=True)
    return {
        "numpy.load": (
            "data.source",
            {"_target_": "numpy.load", "file": str(array), "allow_pickle": True},
        ),
        "torch.load": (
            "model",
            {"_target_": "torch.load", "f": str(pickled), "weights_only": False},
        ),
        "pandas.read_pickle": (
            "data.source",
            {"_target_": "pandas.read_pickle", "filepath_or_buffer": str(pickled)},
        ),
        "joblib.load": ("data.source", {"_target_": "joblib.load", "filename": str(pickled)}),
        "numpy.savetxt": (
            "optimizer",
            {"_target_": "numpy.savetxt", "fname": str(marker), "X": [1.0]},
        ),
    }


def _crafted(legit: Path, tmp: Path, key: str, node: dict) -> Path:
    """A copy of restart_0 of the legit run whose config.yaml has `node` at `key`."""
    folder = tmp / f"crafted-{node['_target_']}"
    shutil.copytree(legit / "restart_0", folder)
    config = yaml.safe_load((folder / "config.yaml").read_text())
    parent, _, leaf = key.rpartition(".")
    (config[parent] if parent else config)[leaf] = node
    (folder / "config.yaml").write_text(yaml.safe_dump(config))
    return folder


def _eval(ckpt: Path, tmp: Path, *extra):
    return evaluate(compose_cfg("eval", [f"ckpt_path={ckpt}", *extra], tmp / "eval"))


def test_crafted_run_folders_run_no_payload(legit_run, tmp_path, train_cfg):
    marker = tmp_path / "PWNED"
    for target, (key, node) in _payloads(tmp_path, marker).items():
        folder = _crafted(legit_run, tmp_path, key, node)
        ckpt = folder / "checkpoints" / "best.ckpt"
        expected = rf"^{key}\._target_='{target}' is invalid: .*config.yaml is not trusted "
        expected += ".* trust_config=true$"
        with pytest.raises(ConfigError, match=expected):
            _eval(ckpt, tmp_path)  # eval.py
        (folder / "ensemble.yaml").write_text(
            yaml.safe_dump({"method": "mean_prob", "members": ["checkpoints/best.ckpt"]})
        )
        with pytest.raises(ConfigError, match=expected):
            _eval(folder / "ensemble.yaml", tmp_path)  # an ensemble of that folder
        with pytest.raises(ConfigError, match=expected):
            train(train_cfg(f"finetune.from={ckpt}", out=f"ft-{target}"))  # fine-tuning
        for analysis in (lab_evaluate, activation_scales):  # the lab's --analyze-only
            with pytest.raises(ConfigError, match=expected):
                analysis(folder)
    assert not marker.exists()


def test_an_ensemble_member_outside_its_run_folder_is_refused(legit_run, tmp_path):
    folder = tmp_path / "ens"
    folder.mkdir()
    other = legit_run / "restart_1" / "checkpoints" / "best.ckpt"
    members = [os.path.relpath(other, folder)]  # ../../legit/run/restart_1/...
    (folder / "ensemble.yaml").write_text(
        yaml.safe_dump({"method": "mean_prob", "members": members})
    )
    with pytest.raises(
        ConfigError, match=r"ckpt_path=.*ensemble.yaml.* lies outside .*trust_config=true"
    ):
        _eval(folder / "ensemble.yaml", tmp_path)
    assert _eval(folder / "ensemble.yaml", tmp_path, "trust_config=true") > 0.5
    assert _eval(legit_run / "ensemble.yaml", tmp_path) > 0.5  # the run's own: no trust needed


def test_a_checkpoint_that_would_run_code_is_refused_without_unsafe_advice(
    legit_run, tmp_path, train_cfg
):
    marker = tmp_path / "PWNED"
    folder = tmp_path / "evil"
    shutil.copytree(legit_run / "restart_0", folder)
    ckpt = folder / "checkpoints" / "best.ckpt"
    state = torch.load(ckpt, weights_only=True)
    state["extra"] = Payload(marker)
    torch.save(state, ckpt)
    for run, key in (
        (lambda: _eval(ckpt, tmp_path), "ckpt_path"),
        (lambda: train(train_cfg(f"finetune.from={ckpt}")), "finetune.from"),
        (lambda: train(train_cfg(f"ckpt_path={ckpt}", out="resumed")), "ckpt_path"),
    ):
        with pytest.raises(
            ConfigError, match=rf"^{key}=.* holds objects other than tensors"
        ) as err:
            run()
        assert "weights_only" not in str(err.value)
    assert not marker.exists()


def test_trust_config_lets_a_legitimate_custom_target_through(train_cfg, tmp_path):
    cfg = train_cfg(*_tiny())
    train(cfg)
    ckpt = Path(cfg.paths.output_dir) / "checkpoints" / "best.ckpt"
    with pytest.raises(ConfigError, match=r"^model\._target_='helpers.custom.TinyNet' is invalid"):
        _eval(ckpt, tmp_path)
    tested = json.loads((Path(cfg.paths.output_dir) / "metrics.json").read_text())["test"]["acc"]
    assert _eval(ckpt, tmp_path, "trust_config=true") == pytest.approx(tested, abs=1e-6)
    finetuned = train_cfg(f"finetune.from={ckpt}", "trust_config=true", *_tiny(), out="ft")
    train(finetuned)
    loaded = json.loads((tmp_path / "ft" / "metrics.json").read_text())["finetune"]["loaded"]
    assert loaded == ["head.1.weight", "head.1.bias", "head.3.weight", "head.3.bias"]


def _tiny():
    return ["~model", "+model._target_=helpers.custom.TinyNet"]


@pytest.mark.slow
def test_eval_of_a_crafted_folder_exits_2_with_one_line(legit_run, tmp_path):
    marker = tmp_path / "PWNED"
    key, node = _payloads(tmp_path, marker)["numpy.load"]
    folder = _crafted(legit_run, tmp_path, key, node)
    result = run_cli(
        str(ROOT / "eval.py"),
        f"ckpt_path={folder}/checkpoints/best.ckpt",
        f"hydra.run.dir={tmp_path}/e",
        cwd=tmp_path,
    )
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "data.source._target_='numpy.load' is invalid" in lines[0], lines
    assert not marker.exists()
