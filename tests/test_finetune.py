"""Fine-tuning on data of another width: a layer is loaded whole or not at all, the skipped
layers are listed, and a layer that was not loaded cannot be frozen."""

import json
import logging
from pathlib import Path

import pytest
import torch

from deeptune.errors import ConfigError
from deeptune.train import train


@pytest.fixture(scope="module")
def digits_ckpt(tmp_path_factory) -> Path:
    """A 2 x 128 MLP trained one epoch on the digits (64 features, 10 classes)."""
    from helpers.runs import compose_cfg

    out = tmp_path_factory.mktemp("pre") / "run"
    train(compose_cfg("train", ["threads=1", "logger=csv", "trainer.max_epochs=1"], out))
    return out / "checkpoints" / "best.ckpt"


def _metrics(cfg) -> dict:
    return json.loads((Path(cfg.paths.output_dir) / "metrics.json").read_text())


def test_another_width_skips_the_whole_first_layer(train_cfg, digits_ckpt, caplog):
    """moons has 2 features: hidden.0.linear's weight cannot fit, so its bias (which could) is
    not loaded either; hidden layer 1 is loaded whole, the head (2 classes) stays fresh."""
    cfg = train_cfg("data=moons", f"finetune.from={digits_ckpt}", "finetune.freeze=[1]")
    with caplog.at_level(logging.INFO, logger="deeptune.models.pretrained"):
        train(cfg)
    report = _metrics(cfg)["finetune"]
    assert sorted(report["skipped_layers"]) == ["head", "hidden.0.linear"]
    assert "(128, 64) there, (128, 2) here" in report["skipped_layers"]["hidden.0.linear"]
    assert "hidden.0.linear.bias" in report["skipped"]
    assert report["loaded"] == ["hidden.1.linear.weight", "hidden.1.linear.bias"]
    assert report["freeze"] == [1]
    warned = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warned) == 1 and "kept fresh: hidden.0.linear" in warned[0].getMessage()

    before = torch.load(digits_ckpt, weights_only=True)["state_dict"]
    after = torch.load(_metrics(cfg)["best_checkpoint"], weights_only=True)["state_dict"]
    for name in ("net.hidden.1.linear.weight", "net.hidden.1.linear.bias"):
        assert torch.equal(before[name], after[name])  # loaded, and frozen for the whole run
    assert not torch.equal(before["net.hidden.0.linear.bias"], after["net.hidden.0.linear.bias"])


def test_freezing_a_layer_that_was_not_loaded_is_refused(train_cfg, digits_ckpt):
    cfg = train_cfg("data=moons", f"finetune.from={digits_ckpt}", "finetune.freeze=[0,1]")
    with pytest.raises(ConfigError) as caught:
        train(cfg)
    message = str(caught.value)
    assert message.startswith("finetune.freeze=[0, 1] is invalid: hidden layer 0 was not loaded")
    assert "freeze only loaded layers (here [1])" in message
    assert "hidden.0.linear.weight is (128, 64) there, (128, 2) here" in message
    assert "\n" not in message
    assert not (Path(cfg.paths.output_dir) / "metrics.json").exists()  # refused before training


def test_freezing_without_a_checkpoint_still_freezes_random_layers(train_cfg):
    """finetune.freeze alone (frozen random features) is not a fine-tune: nothing to refuse."""
    cfg = train_cfg("data=moons", "finetune.freeze=[0]")
    train(cfg)
    assert _metrics(cfg)["finetune"]["freeze"] == [0]
