"""Recurrent models (model=rnn), sequence data (adding, temporal_order) and regression."""

import json
import time
from functools import partial
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers.runs import compose_cfg
from sklearn.metrics import mean_squared_error, r2_score

from deeptune import builders
from deeptune.data.datamodule import split
from deeptune.data.sources import adding, digits, temporal_order
from deeptune.errors import ConfigError
from deeptune.eval import evaluate
from deeptune.models.mlp import MLP
from deeptune.models.module import Classifier, Regressor, TaskModule
from deeptune.models.rnn import CELLS, RNN
from deeptune.train import train

# Tiny sequence runs: a few hundred short sequences, one epoch, a narrow network.
TINY = ["data.seq_len=8", "data.source.n_samples=200", "model.hidden=8", "threads=1"]
NAMES = {"adding": {"loss", "mse", "r2"}, "temporal_order": {"acc", "f1", "loss"}}


def _metrics(cfg) -> dict:
    return json.loads((Path(cfg.paths.output_dir) / "metrics.json").read_text())


# --- data ---


def test_adding_problem():
    table = adding(n_samples=500, seq_len=20, seed=3)
    assert table.task == "regression" and table.classes == []
    assert table.x.shape == (500, 20, 2) and table.x.dtype == np.float32
    assert table.y.shape == (500,) and table.y.dtype == np.float32
    values, markers = table.x[..., 0], table.x[..., 1]
    assert (markers.sum(1) == 2).all()
    assert (markers[:, :10].sum(1) == 1).all() and (markers[:, 10:].sum(1) == 1).all()
    np.testing.assert_allclose(table.y, (values * markers).sum(1), rtol=1e-6)
    big = adding(n_samples=20000, seq_len=10, seed=0)
    assert np.mean((big.y - 1.0) ** 2) == pytest.approx(1 / 6, rel=0.05)  # the baseline
    assert np.array_equal(adding(50, 10, seed=1).x, adding(50, 10, seed=1).x)


def test_temporal_order_problem():
    table = temporal_order(n_samples=400, seq_len=12, seed=0)
    assert table.task == "classification" and table.classes == ["XX", "XY", "YX", "YY"]
    assert table.x.shape == (400, 12, 6) and (table.x.sum(-1) == 1).all()  # one-hot
    symbols = table.x.argmax(-1)
    first, second = symbols[:, :6].max(1), symbols[:, 6:].max(1)  # X=4, Y=5 in each half
    assert ((symbols >= 4).sum(1) == 2).all()
    np.testing.assert_array_equal(table.y, 2 * (first - 4) + (second - 4))


def test_regression_split_and_sequence_scaling():
    table = adding(n_samples=300, seq_len=6, seed=0)
    splits = split(table, 0.2, 0.2, seed=0, standardize=True)
    assert [len(splits[s][0]) for s in ("train", "val", "test")] == [180, 60, 60]
    x_train = splits["train"][0]
    assert x_train.shape == (180, 6, 2) and x_train.dtype == np.float32
    # One scaler per feature, over samples and steps, fitted on the training split only.
    flat = x_train.reshape(-1, 2)
    np.testing.assert_allclose(flat.mean(0), 0, atol=1e-5)
    np.testing.assert_allclose(flat.std(0), 1, atol=1e-4)
    assert abs(splits["test"][0].reshape(-1, 2)[:, 0].mean()) > 1e-4  # not refitted on test
    # Cross-validation folds of a regression: plain K-fold, each sample validates once.
    val_y = np.concatenate(
        [split(table, 0.2, 0.2, 0, False, fold=(k, 3))["val"][1] for k in range(3)]
    )
    rest_y = np.concatenate([splits[s][1] for s in ("train", "val")])
    np.testing.assert_allclose(np.sort(val_y), np.sort(rest_y))


def test_seq_len_reaches_the_source_not_the_datamodule(tmp_path):
    cfg = compose_cfg("train", ["model=rnn", "data=adding", "data.seq_len=100"], tmp_path)
    assert cfg.data.source.seq_len == 100
    assert cfg.optimized_metric == "val/mse" and cfg.optimized_mode == "min"
    assert cfg.data.standardize is False
    dm = builders.datamodule(cfg, adding(n_samples=40, seq_len=100))  # no seq_len= argument
    assert dm.input_shape == (100, 2) and dm.num_outputs == 1 and dm.task == "regression"


# --- models ---


@pytest.mark.parametrize("cell", list(CELLS))
@pytest.mark.parametrize("bidirectional", [False, True])
def test_rnn_shapes(cell, bidirectional):
    net = RNN((7, 3), 4, cell=cell, hidden=5, layers=2, bidirectional=bidirectional, dropout=0.3)
    assert type(net.rnn) is CELLS[cell] and net.rnn.dropout == 0.3
    assert net.rnn.num_layers == 2 and net.rnn.bidirectional == bidirectional
    assert net.head.in_features == 5 * (2 if bidirectional else 1)
    assert net(torch.randn(2, 7, 3)).shape == (2, 4)
    # gradient-health groups parameters by these names: rnn.weight_ih_l<k> is layer k
    names = {n for n, _ in net.named_parameters()}
    assert {"rnn.weight_ih_l0", "rnn.weight_hh_l1", "head.weight"} <= names


def test_rnn_bidirectional_head_sees_both_directions():
    torch.manual_seed(0)
    net = RNN((6, 1), 1, cell="gru", hidden=4, bidirectional=True)
    x = torch.randn(3, 6, 1)
    out, _ = net.rnn(x)
    expected = torch.cat([out[:, -1, :4], out[:, 0, 4:]], dim=1)  # forward last, backward first
    torch.testing.assert_close(net(x), net.head(expected))


def test_flat_input_is_a_sequence_of_single_values_and_mlp_flattens_sequences():
    rnn = RNN((64,), 10, cell="rnn", hidden=6)
    assert rnn.rnn.input_size == 1 and rnn(torch.randn(2, 64)).shape == (2, 10)
    mlp = MLP([50, 2], 1, depth=1, width=8)
    assert mlp.hidden[0].linear.in_features == 100
    assert mlp(torch.randn(3, 50, 2)).shape == (3, 1)


def test_regression_metrics_match_scikit_learn():
    """Metrics accumulated over several batches equal scikit-learn's on all the predictions."""
    torch.manual_seed(0)
    net = MLP([5, 2], 1, depth=1, width=8)
    model = Regressor(net, 1, torch.optim.Adam)
    x, y = torch.randn(100, 5, 2), torch.rand(100) * 2
    with torch.no_grad():
        for batch in zip(x.split(32), y.split(32), strict=True):
            model._step(batch, "test")
        preds = model(x)
    assert preds.shape == (100,)
    model._flush("test")  # what the end of an epoch does
    figures = model.metrics["_test"].compute()
    assert float(figures["test/mse"]) == pytest.approx(mean_squared_error(y, preds), rel=1e-5)
    assert float(figures["test/r2"]) == pytest.approx(r2_score(y, preds), rel=1e-5)
    loss = float(model.losses["_test"].compute())  # batch losses weighted by batch size
    assert loss == pytest.approx(float(figures["test/mse"]), rel=1e-5)


def test_regressor_shares_the_fine_tuning_parameter_groups():
    net = RNN((4, 2), 1, hidden=3)
    old = [n for n, _ in net.named_parameters() if n.startswith("rnn.")]
    model = Regressor(net, 1, partial(torch.optim.SGD, lr=0.1), pretrained=old, lr_scale=0.1)
    groups = model.configure_optimizers().param_groups
    assert [g["lr"] for g in groups] == [0.1, pytest.approx(0.01)]
    assert [len(g["params"]) for g in groups] == [2, 4]  # the head; the LSTM
    assert isinstance(model, TaskModule) and not isinstance(model, Classifier)


# --- end to end ---


@pytest.mark.parametrize("data", ["adding", "temporal_order"])
@pytest.mark.parametrize("cell", list(CELLS))
def test_every_cell_trains_on_sequence_data(train_cfg, cell, data):
    cfg = train_cfg("model=rnn", f"model.cell={cell}", f"data={data}", *TINY)
    value = train(cfg)
    metrics = _metrics(cfg)
    for stage in ("train", "val", "test"):
        assert set(metrics[stage]) == NAMES[data]
    key = "mse" if data == "adding" else "acc"
    assert value == pytest.approx(metrics["val"][key])  # the optimized metric
    assert np.isfinite(metrics["test"][key])


def test_regression_run_figures_match_scikit_learn(train_cfg, tmp_path):
    """metrics.json's test MSE and R² are scikit-learn's on the kept model's predictions, and
    eval.py returns the run's optimized metric on the test split (test/mse)."""
    cfg = train_cfg("model=rnn", "data=adding", *TINY, "trainer.max_epochs=2")
    train(cfg)
    test = _metrics(cfg)["test"]
    ckpt = Path(cfg.paths.output_dir) / "checkpoints" / "best.ckpt"
    dm = builders.datamodule(cfg, builders.source(cfg))
    dm.setup()
    model = builders.module(cfg, dm)
    model.load_state_dict(torch.load(ckpt, weights_only=True)["state_dict"])
    model.eval()
    x, y = dm.tensors["test"]
    with torch.no_grad():
        preds = model(x).numpy()
    assert test["mse"] == pytest.approx(mean_squared_error(y, preds), rel=1e-5)
    assert test["r2"] == pytest.approx(r2_score(y, preds), rel=1e-5, abs=1e-6)
    eval_cfg = compose_cfg("eval", [f"ckpt_path={ckpt}"], tmp_path / "eval")
    assert evaluate(eval_cfg) == pytest.approx(test["mse"], abs=1e-6)


def test_rnn_reads_the_digits_pixel_by_pixel(train_cfg):
    cfg = train_cfg("model=rnn", "model.hidden=8", "threads=1")
    train(cfg)
    assert set(_metrics(cfg)["test"]) == {"acc", "f1", "loss"}
    net = builders.module(cfg, builders.datamodule(cfg, digits())).net
    assert net.rnn.input_size == 1  # 64 steps of one pixel


def test_mlp_on_sequence_regression(train_cfg):
    cfg = train_cfg("model=mlp", "data=adding", *TINY[:2], "threads=1")
    train(cfg)
    assert set(_metrics(cfg)["test"]) == {"loss", "mse", "r2"}


def test_stacked_bidirectional_rnn_with_dropout(train_cfg):
    cfg = train_cfg(
        "model=rnn",
        "model.cell=gru",
        "model.layers=2",
        "model.bidirectional=true",
        "model.dropout=0.2",
        "data=temporal_order",
        *TINY,
    )
    train(cfg)
    assert set(_metrics(cfg)["test"]) == {"acc", "f1", "loss"}


def test_regression_restarts_average_their_predictions(train_cfg, tmp_path):
    cfg = train_cfg("model=rnn", "data=adding", *TINY, "restarts=2", "ensemble=mean_logit")
    train(cfg)
    metrics = _metrics(cfg)
    assert set(metrics["restarts"]["test"]) == {"loss", "mse", "r2"}
    ensemble = metrics["ensemble"]
    assert set(ensemble["test"]) == {"mse", "r2"}
    manifest = Path(cfg.paths.output_dir) / "ensemble.yaml"
    eval_cfg = compose_cfg("eval", [f"ckpt_path={manifest}"], tmp_path / "eval")
    assert evaluate(eval_cfg) == pytest.approx(ensemble["test"]["mse"], abs=1e-9)


BAD = [
    (["model=rnn", "model.cell=transformer"], "model.cell='transformer' is invalid: must be one"),
    (["model=rnn", "data=adding", "data.seq_len=1"], "data.seq_len=1 is invalid: must be an"),
    (["model=rnn", "model.hidden=0"], "model.hidden=0 is invalid: must be an integer >= 1"),
    (["model=rnn", "model.bidirectional=maybe"], "model.bidirectional='maybe' is invalid"),
    (
        ["data=adding", "optimized_metric=val/acc"],
        "optimized_metric='val/acc' is invalid: adding is a regression data set: use one of "
        "val/mse, val/r2, val/loss",
    ),
    (
        ["data=adding", "optimized_metric=val/r2"],
        "optimized_mode='min' is invalid: val/r2 is better when higher: set optimized_mode=max",
    ),
    (
        ["data=temporal_order", "optimized_metric=val/mse", "optimized_mode=min"],
        "optimized_metric='val/mse' is invalid: temporal_order is a classification data set",
    ),
    (
        ["data=adding", "restarts=2", "ensemble=majority_vote"],
        "ensemble='majority_vote' is invalid: adding is a regression data set: use mean_logit",
    ),
]


@pytest.mark.parametrize(("overrides", "message"), BAD, ids=[" ".join(b[0]) for b in BAD])
def test_bad_values_are_one_line_config_errors(train_cfg, overrides, message):
    cfg = train_cfg(*overrides)
    with pytest.raises(ConfigError) as err:
        train(cfg)
    assert str(err.value).startswith(message)
    assert "\n" not in str(err.value)
    assert not (Path(cfg.paths.output_dir) / "metrics.json").exists()


# --- the acceptance benchmark ---

# scripts/bench_recurrent.py runs the same budget over several seeds and prints the table.
BUDGET = [
    "model=rnn",
    "model.hidden=32",
    "data=adding",
    "data.seq_len=50",
    "data.source.n_samples=5000",
    "data.batch_size=64",
    "optimizer.lr=0.01",
    "trainer.max_epochs=20",
    "~callbacks.early_stopping",  # every cell gets the same number of epochs
    "logger=none",
    "threads=1",
]


@pytest.mark.slow
def test_gated_cells_beat_plain_rnn_on_adding(train_cfg):
    """Adding problem, seq_len=50, the same small budget: the plain tanh RNN stays near the
    0.167 baseline of predicting 1.0, LSTM and GRU go far below it."""
    mse, wall = {}, {}
    for cell in CELLS:
        cfg = train_cfg(*BUDGET, f"model.cell={cell}", "seed=0", fast=False, out=cell)
        started = time.perf_counter()
        train(cfg)
        wall[cell] = time.perf_counter() - started
        mse[cell] = _metrics(cfg)["test"]["mse"]
    print({c: f"test MSE {mse[c]:.4f}, {wall[c]:.1f} s" for c in CELLS})
    assert mse["rnn"] > 0.1  # near the baseline: it learned (almost) nothing
    for cell in ("lstm", "gru"):
        assert mse[cell] < 0.05 and mse[cell] < mse["rnn"] / 5
