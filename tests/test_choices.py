"""Every choice of every config group runs, and the README's recipes compose and train."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from deeptune.config import group_choices
from deeptune.train import train

SKIP = {
    # Selected by other tests: they need a GPU, several processes, or a user's file.
    ("trainer", "gpu"),
    ("trainer", "ddp"),
    ("data", "csv"),
    ("data", "npz"),
    # The DataLoader path reads a user's folder / table / arrays: tests/test_loaders.py.
    ("data", "images"),
    ("data", "text"),
    ("data", "npy"),
    ("logger", "wandb"),
    ("logger", "many"),
}
GROUPS = [
    "model",
    "data",
    "optimizer",
    "scheduler",
    "trainer",
    "callbacks",
    "logger",
    "debug",
    "experiment",
    "paths",
]
CASES = [(g, c) for g in GROUPS for c in group_choices(g) if (g, c) not in SKIP]
# What a choice needs beside itself: the data it reads, or a size that keeps the case fast.
EXTRA = {
    ("model", "cnn"): ["data=digits_images", "model.width=8", "model.depth=2"],
    ("model", "transformer"): ["model.width=16", "model.heads=2"],
    # one epoch memorises nothing: a threshold it meets, or the FAIL verdict ends the run
    ("debug", "overfit"): ["callbacks.overfit_check.threshold=100"],
}


@pytest.mark.parametrize(("group", "choice"), CASES, ids=[f"{g}={c}" for g, c in CASES])
def test_every_choice_trains_one_epoch(train_cfg, group, choice):
    overrides = [f"{group}={choice}", "trainer.max_epochs=1", *EXTRA.get((group, choice), [])]
    cfg = train_cfg(*overrides)
    value = train(cfg)
    assert 0.0 <= value <= 1.0
    metrics = json.loads((Path(cfg.paths.output_dir) / "metrics.json").read_text())
    regression = cfg.optimized_metric == "val/mse"  # data=adding
    split = "test" if cfg.test else "val"  # debug=overfit does not test
    assert set(metrics[split]) == ({"loss", "mse", "r2"} if regression else {"acc", "f1", "loss"})


@pytest.mark.skipif(not torch.cuda.is_available(), reason="trainer=gpu needs a CUDA device")
def test_gpu_trainer(train_cfg):
    assert train(train_cfg("trainer=gpu")) > 0


README_RECIPES = [
    ["optimizer=adam", "model.depth=8", "model.width=128", "model.activation=gelu"],
    [
        "model.norm=batch",
        "model.init=xavier_uniform",
        "model.dropout=0.3",
        "optimizer.weight_decay=1e-4",
    ],
    ["scheduler=two_stage", "data.batch_size=128", "trainer.max_epochs=2", "seed=7"],
    ["model.width=[64,32,16]", "model.depth=3", "model.residual=true"],
    ["trainer.gradient_clip_val=1.0", "trainer.gradient_clip_algorithm=value"],
    ["callbacks.early_stopping.patience=1", "callbacks.early_stopping.min_delta=0.01"],
    ["model.activation=maxout", "model.maxout_pieces=3", "model.norm=layer"],
    ["optimizer=lbfgs", "optimizer.weight_decay=1e-3", "data.batch_size=512"],
]


@pytest.mark.parametrize("overrides", README_RECIPES, ids=lambda o: " ".join(o))
def test_readme_recipes(train_cfg, overrides):
    assert train(train_cfg(*overrides)) > 0.1  # better than chance on 10 digits


def test_own_csv_and_npz_tables(train_cfg, tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 3))
    labels = np.where(x[:, 0] + x[:, 1] > 0, "pos", "neg")
    frame = pd.DataFrame(x, columns=["a", "b", "c"]).assign(kind=labels)
    frame.to_csv(tmp_path / "t.csv", index=False)
    np.savez(tmp_path / "t.npz", x=x, y=(labels == "pos").astype(int))
    csv_cfg = train_cfg(
        "data=csv",
        f"data.source.path={tmp_path / 't.csv'}",
        "data.source.target=kind",
        "data.source.features=[a,b]",
        "trainer.max_epochs=5",
        out="csv",
    )
    npz_cfg = train_cfg(
        "data=npz", f"data.source.path={tmp_path / 't.npz'}", "trainer.max_epochs=5", out="npz"
    )
    assert train(csv_cfg) > 0.8 and train(npz_cfg) > 0.8


def test_logger_many_writes_every_format(train_cfg, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    cfg = train_cfg("logger=many")
    train(cfg)
    out = Path(cfg.paths.output_dir)
    assert (out / "csv" / "metrics.csv").is_file()
    assert list((out / "tensorboard").glob("events.out.tfevents.*"))
    assert list((out / "wandb").glob("offline-run-*"))
