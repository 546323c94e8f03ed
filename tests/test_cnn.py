"""The convolutional network (model=cnn) and the digits as images (data=digits_images)."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import deeptune
from deeptune import builders
from deeptune.config import validate
from deeptune.data.datamodule import fit_scaler, scale
from deeptune.errors import ConfigError
from deeptune.models.choices import CONV_ACTIVATIONS, CONV_NORMS, INITS, POOLS
from deeptune.models.cnn import CNN
from deeptune.train import train

TINY = ["model=cnn", "data=digits_images", "model.width=8", "model.depth=2", "optimizer.lr=0.01"]


@pytest.mark.parametrize("residual", [False, True])
@pytest.mark.parametrize("norm", CONV_NORMS)
def test_every_norm_builds_and_runs(norm, residual):
    net = CNN([1, 8, 8], 10, depth=3, width=[4, 8, 8], norm=norm, groups=2, residual=residual)
    assert net(torch.randn(5, 1, 8, 8)).shape == (5, 10)
    assert len(net.hidden) == 3 and isinstance(net.hidden, nn.ModuleList)


@pytest.mark.parametrize("activation", CONV_ACTIVATIONS)
def test_every_activation_runs(activation):
    net = CNN([3, 6, 6], 1, depth=2, width=4, activation=activation, residual=True)
    assert net(torch.randn(2, 3, 6, 6)).shape == (2, 1)


@pytest.mark.parametrize("init", INITS)
def test_every_init_scheme_applies_to_convolutions(init):
    torch.manual_seed(0)
    net = CNN([1, 8, 8], 3, depth=2, width=4, init=init, norm="none", residual=True)
    assert torch.isfinite(net(torch.randn(2, 1, 8, 8))).all()
    if init == "zeros":
        assert net.hidden[0].conv1.weight.abs().sum() == 0


def test_kaiming_init_uses_the_convolution_fan_in():
    torch.manual_seed(0)
    net = CNN([16, 8, 8], 2, depth=1, width=256, kernel=5, init="kaiming_normal")
    std = net.hidden[0].conv1.weight.std().item()
    assert std == pytest.approx((2 / (16 * 5 * 5)) ** 0.5, rel=0.03)  # fan_in = C_in * k * k


@pytest.mark.parametrize("pool", POOLS)
def test_pooling_halves_the_map_every_n_blocks_while_it_can(pool):
    net = CNN([1, 8, 8], 2, depth=6, width=4, pool=pool, pool_every=2)
    pools = [not isinstance(b.pool, nn.Identity) for b in net.hidden]
    assert pools == ([False, True] * 3 if pool != "none" else [False] * 6)
    deep = CNN([1, 8, 8], 2, depth=8, width=4, pool_every=1)  # 8 -> 4 -> 2 -> 1, then 1 x 1
    assert sum(not isinstance(b.pool, nn.Identity) for b in deep.hidden) == 3
    assert deep(torch.randn(2, 1, 8, 8)).shape == (2, 2)


def test_residual_blocks_project_only_when_the_channels_change():
    net = CNN([1, 8, 8], 10, depth=3, width=[8, 8, 16], residual=True, norm="batch")
    kinds = [type(b.shortcut).__name__ for b in net.hidden]
    assert kinds == ["Sequential", "Identity", "Sequential"]
    projection = net.hidden[2].shortcut[0]
    assert projection.kernel_size == (1, 1) and projection.in_channels == 8
    assert projection.out_channels == 16
    # A block whose convolutions are zero passes its input through the identity shortcut.
    block = net.hidden[1].eval()
    nn.init.zeros_(block.conv2.weight)
    x = torch.rand(2, 8, 4, 4)  # >= 0: the ReLU after the sum keeps it
    expected = block.pool(x)
    torch.testing.assert_close(block(x), expected)


def test_a_plain_block_has_no_second_convolution():
    block = CNN([1, 8, 8], 2, depth=1, width=4, norm="group", groups=2).hidden[0]
    assert [n for n, _ in block.named_children()] == ["conv1", "norm1", "act", "pool", "dropout"]
    assert isinstance(block.norm1, nn.GroupNorm) and block.norm1.num_groups == 2


def test_the_schema_refuses_what_cannot_work(train_cfg):
    cases = {
        "model.activation=geglu": "model.activation='geglu' is invalid: geglu widens",
        "model.activation=maxout": "model.activation='maxout' is invalid",
        "model.norm=group model.groups=3": "model.groups=3 is invalid: norm=group",
        "model.width=[8,8]": "model.width=\\[8, 8\\] is invalid: a list of widths",
        "model.pool=median": "model.pool='median' is invalid",
        "model.norm=instance": "model.norm='instance' is invalid",
    }
    for override, message in cases.items():
        with pytest.raises(ConfigError, match=message):
            validate(train_cfg("model=cnn", *override.split()))


def test_a_flat_table_is_one_error_naming_the_image_data(train_cfg):
    with pytest.raises(ConfigError) as err:
        train(train_cfg("model=cnn", "data=digits"))
    message = str(err.value)
    assert message.startswith("model='CNN' is invalid: data=digits gives samples of shape (64,)")
    assert "data=digits_images" in message and "\n" not in message


def test_digits_images_are_the_digits_scaled_per_channel(train_cfg):
    cfg = train_cfg("data=digits_images")
    table = builders.source(cfg)
    assert table.x.shape == (1797, 1, 8, 8) and table.x.dtype == np.float32
    flat = builders.source(train_cfg("data=digits", out="flat"))
    np.testing.assert_array_equal(table.x.reshape(len(table.x), -1), flat.x)
    dm = builders.datamodule(cfg, table)
    assert dm.input_shape == (1, 8, 8) and dm.scaler["axis"] == 1
    train_x = dm.splits["train"][0]
    assert len(dm.scaler["mean"]) == 1 and abs(train_x.mean()) < 1e-5
    assert train_x.std() == pytest.approx(1.0, abs=1e-4)


def test_per_channel_scaling_matches_scikit_learn_per_channel():
    rng = np.random.default_rng(0)
    spread = np.array([1.0, 5.0, 0.1])[None, :, None, None]
    x = (rng.normal(size=(50, 3, 4, 5)) * spread + 7).astype(np.float32)
    scaler = fit_scaler(x, np.arange(40))
    channels = x[:40].transpose(0, 2, 3, 1).reshape(-1, 3)
    np.testing.assert_allclose(scaler["mean"], channels.mean(0), rtol=1e-5)
    np.testing.assert_allclose(scaler["std"], channels.std(0), rtol=1e-4)
    scaled = scale(x, scaler)
    assert scaled.shape == x.shape
    np.testing.assert_allclose(scaled[:40].mean(axis=(0, 2, 3)), 0, atol=1e-5)
    # A sequence (n, steps, features) and a table keep their per-feature, last-axis scaling.
    seq = rng.normal(size=(20, 6, 3)).astype(np.float32)
    assert "axis" not in fit_scaler(seq, np.arange(20))
    assert len(fit_scaler(seq, np.arange(20))["mean"]) == 3


def test_cnn_trains_and_its_checkpoint_predicts_raw_images(train_cfg):
    cfg = train_cfg(*TINY, "trainer.max_epochs=2", "model.residual=true")
    train(cfg)
    out = Path(cfg.paths.output_dir)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["test"]["acc"] > 0.3  # chance is 0.1
    assert metrics["grad_health"]["layers"] == ["hidden.0", "hidden.1", "head"]
    table = builders.source(cfg)
    test = builders.datamodule(cfg, table).indices["test"]
    model = deeptune.load(out / "checkpoints" / "best.ckpt")
    labels = np.asarray(table.classes)[table.y[test]]
    raw = table.x[test]  # unscaled pixels 0..16, as a user holds them
    assert (model.predict(raw) == labels).mean() == pytest.approx(metrics["test"]["acc"], abs=1e-7)
    with pytest.raises(ConfigError, match=r"need numbers of shape \(n, 1, 8, 8\)"):
        model.predict(raw.reshape(len(raw), -1))


def test_stepwise_freezing_and_tsne_work_on_the_blocks(train_cfg):
    stepwise = train_cfg(*TINY, "stepwise.strategy=lower_first", "stepwise.every=1")
    train(stepwise)
    metrics = json.loads((Path(stepwise.paths.output_dir) / "metrics.json").read_text())
    assert metrics["stepwise"]["schedule"] == [{"epoch": 0, "layers": [0]}]
    frozen = train_cfg(*TINY, "finetune.freeze=[0]", "report.tsne=true", out="frozen")
    train(frozen)
    assert (Path(frozen.paths.output_dir) / "tsne.png").is_file()
    with pytest.raises(ConfigError, match=r"finetune.freeze=\[2\] is invalid: must be a list"):
        validate(train_cfg(*TINY, "finetune.freeze=[2]", out="bad"))


def test_images_of_your_own_from_an_npz(train_cfg, tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(120, 3, 6, 6)).astype(np.float32)
    y = (x[:, 0].mean(axis=(1, 2)) > 0).astype(int)
    np.savez(tmp_path / "images.npz", x=x, y=y)
    npz = [f"data.source.path={tmp_path / 'images.npz'}", "data=npz"]
    cfg = train_cfg(*TINY[:1], *npz, "model.width=4", "model.depth=1")
    assert 0.0 <= train(cfg) <= 1.0
    metrics = json.loads((Path(cfg.paths.output_dir) / "metrics.json").read_text())
    assert len(builders.datamodule(cfg, builders.source(cfg)).scaler["mean"]) == 3  # channels
    assert metrics["n_params"] == 3 * 4 * 9 + 4 * 2 + (4 * 2 + 2)  # conv, batch norm, head
