"""Step-wise unfreezing and fine-tuning: frozen weights stay put, pretrained weights help."""

import json
from functools import partial
from pathlib import Path

import pandas as pd
import pytest
import torch
from lightning.pytorch.callbacks import Callback
from sklearn.datasets import load_digits

from deeptune import builders
from deeptune.errors import ConfigError
from deeptune.models.mlp import MLP
from deeptune.models.module import Classifier
from deeptune.train import train


class Snapshots(Callback):
    """Each hidden layer's weight before training and after every epoch."""

    def __init__(self):
        self.weights: list[list[torch.Tensor]] = []

    def _take(self, pl_module):
        self.weights.append([b.linear.weight.detach().clone() for b in pl_module.net.hidden])

    def on_train_start(self, trainer, pl_module):
        self._take(pl_module)

    def on_train_epoch_end(self, trainer, pl_module):
        self._take(pl_module)


def _with_snapshots(monkeypatch) -> Snapshots:
    snaps, build = Snapshots(), builders.callbacks
    monkeypatch.setattr(
        builders, "callbacks", lambda cfg, has_logger: {**build(cfg, has_logger), "snaps": snaps}
    )
    return snaps


def _metrics(cfg) -> dict:
    return json.loads((Path(cfg.paths.output_dir) / "metrics.json").read_text())


@pytest.mark.parametrize(
    ("strategy", "order"), [("lower_first", [0, 1, 2]), ("top_first", [2, 1, 0])]
)
def test_stepwise_frozen_layers_do_not_change(train_cfg, monkeypatch, strategy, order):
    snaps = _with_snapshots(monkeypatch)
    cfg = train_cfg(
        f"stepwise.strategy={strategy}", "stepwise.every=2", "model.depth=3", "trainer.max_epochs=5"
    )
    train(cfg)
    w = snaps.weights  # w[0] before training, w[e + 1] after epoch e
    for stage, layer in enumerate(order):
        start = 2 * stage  # the epoch this layer starts training
        for e in range(start):
            assert torch.equal(w[e + 1][layer], w[0][layer]), (layer, e)
        assert not torch.equal(w[start + 1][layer], w[start][layer]), layer
    schedule = _metrics(cfg)["stepwise"]["schedule"]
    assert schedule == [{"epoch": 2 * s, "layers": [i]} for s, i in enumerate(order)]


def _digits_csv(path: Path, rows: slice, classes) -> Path:
    digits = load_digits()
    frame = pd.DataFrame(digits.data, columns=[f"p{i}" for i in range(64)])
    frame["label"] = digits.target
    frame = frame.iloc[rows]
    frame[frame.label.isin(classes)].to_csv(path, index=False)
    return path


def test_finetune_loads_and_freezes_then_compare_with_random_init(train_cfg, tmp_path):
    """Pretrain on half of the digits (10 classes); fine-tune on the other half's 0-4 (5 classes:
    a new head, no image seen before). On digits a random init is already at ~0.95 after one
    epoch, so transfer is not asserted to win; both figures are printed (`pytest -s`)."""
    source = _digits_csv(tmp_path / "a.csv", slice(0, None, 2), range(10))
    target = _digits_csv(tmp_path / "b.csv", slice(1, None, 2), range(5))
    pre = train_cfg("data=csv", f"data.source.path={source}", "trainer.max_epochs=10", out="pre")
    train(pre)
    ckpt = Path(pre.paths.output_dir) / "checkpoints" / "best.ckpt"
    task = ["data=csv", f"data.source.path={target}", "trainer.max_epochs=2", "data.batch_size=32"]
    tuned = train_cfg(*task, f"finetune.from={ckpt}", "finetune.freeze=[0]", out="tuned")
    train(tuned)
    scratch = train_cfg(*task, out="scratch")
    train(scratch)

    report = _metrics(tuned)["finetune"]
    assert report["skipped"] == ["head.weight", "head.bias"]
    assert "hidden.0.linear.weight" in report["loaded"] and report["freeze"] == [0]
    before = torch.load(ckpt, weights_only=True)["state_dict"]
    after = torch.load(_metrics(tuned)["best_checkpoint"], weights_only=True)["state_dict"]
    for name in ("net.hidden.0.linear.weight", "net.hidden.0.linear.bias"):
        assert torch.equal(before[name], after[name])  # frozen for the whole run
    assert not torch.equal(
        before["net.hidden.1.linear.weight"], after["net.hidden.1.linear.weight"]
    )
    tuned_acc, scratch_acc = _metrics(tuned)["test"]["acc"], _metrics(scratch)["test"]["acc"]
    print(f"fine-tuned {tuned_acc:.4f} vs random init {scratch_acc:.4f}")
    assert tuned_acc > 0.5  # far above chance (0.2): the loaded features work


def test_pretrained_layers_get_the_scaled_learning_rate():
    net = MLP(4, 3, depth=2, width=8)
    old = [n for n, _ in net.named_parameters() if n.startswith("hidden.")]
    model = Classifier(net, 3, partial(torch.optim.Adam, lr=1e-2), pretrained=old, lr_scale=0.1)
    groups = model.configure_optimizers().param_groups
    assert [g["lr"] for g in groups] == [1e-2, pytest.approx(1e-3)]
    assert [len(g["params"]) for g in groups] == [2, 4]  # the head; the hidden layers


def test_any_network_with_hidden_blocks_trains_stepwise_and_freezes(train_cfg):
    user = ["~model", "+model._target_=helpers.custom.BlockNet", "+model.blocks=3"]
    cfg = train_cfg(
        *user, "stepwise.strategy=top_first", "stepwise.every=1", "trainer.max_epochs=2"
    )
    train(cfg)
    metrics = json.loads((Path(cfg.paths.output_dir) / "metrics.json").read_text())
    assert metrics["stepwise"]["schedule"] == [
        {"epoch": 0, "layers": [2]},
        {"epoch": 1, "layers": [1]},
    ]
    with pytest.raises(
        ConfigError, match=r"freeze=\[3\] is invalid: .* indices in 0\.\.2 \(BlockNet has 3\)"
    ):
        train(train_cfg(*user, "finetune.freeze=[3]", out="past"))
    flat = ["~model", "+model._target_=helpers.custom.TinyNet"]
    with pytest.raises(ConfigError, match=r"TinyNet \(helpers.custom.TinyNet\) has none"):
        train(train_cfg(*flat, "finetune.freeze=[0]", out="none"))
