"""Restarts (N seeds, mean ± spread), ensembles of them, and the bad inputs of issue 5."""

import json
from pathlib import Path

import numpy as np
import pytest
from helpers.runs import compose_cfg
from omegaconf import OmegaConf

from deeptune.errors import ConfigError
from deeptune.eval import evaluate
from deeptune.run import repeat
from deeptune.train import train


def _metrics(cfg) -> dict:
    return json.loads((Path(cfg.paths.output_dir) / "metrics.json").read_text())


def test_restarts_report_mean_and_spread_and_repeat(train_cfg):
    runs = []
    for out in ("first", "again"):
        cfg = train_cfg("restarts=5", "trainer.max_epochs=2", out=out)
        value = train(cfg)
        runs.append(_metrics(cfg))
    metrics = runs[0]
    spread = metrics["restarts"]
    assert spread["n"] == 5 and spread["seeds"] == [42, 43, 44, 45, 46]
    for split in ("val", "test"):
        for name in ("acc", "f1", "loss"):
            s = spread[split][name]
            assert len(s["runs"]) == 5 and s["mean"] == pytest.approx(np.mean(s["runs"]))
            assert s["std"] > 0 and s["min"] <= s["mean"] <= s["max"]
            assert s["ci95"][0] < s["mean"] < s["ci95"][1]
            assert metrics[split][name] == pytest.approx(s["mean"])
    assert value == pytest.approx(spread["val"]["acc"]["mean"])  # the sweep objective
    out = Path(cfg.paths.output_dir)
    for i in range(5):
        assert json.loads((out / f"restart_{i}" / "metrics.json").read_text())["seed"] == 42 + i
    assert not (out / "ensemble.yaml").exists()
    assert runs[0]["restarts"] == runs[1]["restarts"]  # same seeds, same figures


def test_one_restart_is_the_plain_run(train_cfg):
    cfg = train_cfg("restarts=1")
    train(cfg)
    out = Path(cfg.paths.output_dir)
    assert not list(out.glob("restart_*")) and "restarts" not in _metrics(cfg)
    assert (out / "checkpoints" / "best.ckpt").is_file()


def test_ensemble_beats_the_mean_single_model_and_eval_reproduces_it(train_cfg, tmp_path):
    cfg = train_cfg("restarts=5", "ensemble=mean_prob", "trainer.max_epochs=10")
    train(cfg)
    metrics = _metrics(cfg)
    ensemble = metrics["ensemble"]
    assert ensemble["method"] == "mean_prob"
    assert ensemble["test"]["acc"] >= metrics["restarts"]["test"]["acc"]["mean"]
    # (not asserted on val: each member's val figure is that of its best epoch, picked on val)
    assert set(ensemble["val"]) == {"acc", "f1"}
    manifest = Path(cfg.paths.output_dir) / "ensemble.yaml"
    eval_cfg = compose_cfg("eval", [f"ckpt_path={manifest}"], tmp_path / "eval")
    assert evaluate(eval_cfg) == pytest.approx(ensemble["test"]["acc"], abs=1e-9)


def test_parts_are_derived_configs_and_share_a_wandb_group(train_cfg):
    """Each restart's config is derived from the run's, which stays as it was; all restarts log
    into one W&B group unless the user named one."""
    cfg = train_cfg("logger=wandb", "restarts=3", "optuna.trial=7")
    before = OmegaConf.to_yaml(cfg)
    parts = repeat.variants(cfg)
    assert OmegaConf.to_yaml(cfg) == before  # nothing written into the run's config
    assert [c.logger.wandb.group for c in parts] == ["run"] * 3
    assert [c.seed for c in parts] == [42, 43, 44] and [c.data.seed for c in parts] == [42, 43, 44]
    assert [Path(c.paths.output_dir).name for c in parts] == [f"restart_{i}" for i in range(3)]
    assert all(c.restarts == 1 and c.ensemble == "none" for c in parts)
    # the trial's learning curve is the run's: parts do not report to it
    assert all(c.callbacks.optuna_pruning is None for c in parts)
    assert parts[0].callbacks.model_checkpoint.dirpath.endswith("restart_0/checkpoints")
    named = train_cfg("logger=wandb", "restarts=2", "logger.wandb.group=mine", out="named")
    assert [c.logger.wandb.group for c in repeat.variants(named)] == ["mine"] * 2
    folds = repeat.variants(train_cfg("cv.folds=3", out="cv"))
    assert [c.cv.fold for c in folds] == [0, 1, 2] and {c.seed for c in folds} == {42}


BAD = [
    ("restarts=0", "restarts=0 is invalid: must be an integer >= 1"),
    ("ensemble=foo", "ensemble='foo' is invalid: must be one of none, mean_prob, majority_vote"),
    ("ensemble=mean_prob", "ensemble='mean_prob' is invalid: combines restarts: set restarts >= 2"),
    ("finetune.from=missing.ckpt", "finetune.from='missing.ckpt' is invalid: no such file"),
    (
        "finetune.freeze=[7]",
        "finetune.freeze=[7] is invalid: must be a list of hidden layer indices "
        "in 0..1 (model.depth=2)",
    ),
    (
        "stepwise.strategy=foo",
        "stepwise.strategy='foo' is invalid: must be one of none, lower_first",
    ),
    ("stepwise.every=0", "stepwise.every=0 is invalid: must be an integer >= 1"),
    ("finetune.lr_scale=0", "finetune.lr_scale=0 is invalid: must be a number > 0"),
]


@pytest.mark.parametrize(("override", "message"), BAD, ids=[b[0] for b in BAD])
def test_bad_input_is_one_line(train_cfg, override, message):
    cfg = train_cfg(override)
    with pytest.raises(ConfigError) as err:
        train(cfg)
    assert str(err.value).startswith(message) and "\n" not in str(err.value)
    assert not (Path(cfg.paths.output_dir) / "metrics.json").exists()


def test_restarts_with_folds_are_refused(train_cfg):
    with pytest.raises(ConfigError, match="cannot be combined with cv.folds > 1"):
        train(train_cfg("restarts=2", "cv.folds=3"))
