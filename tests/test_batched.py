"""restarts_backend=batched: the restarts trained as one vmapped model match the sequential ones
member by member, stop where they stop, and leave folders the ensemble, eval and load read."""

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch

import deeptune
from deeptune.config import validate
from deeptune.errors import ConfigError
from deeptune.eval import evaluate
from deeptune.train import train

QUIET = ["callbacks.progress_bar=null", "callbacks.model_summary=null"]


def _members(cfg, n: int) -> list[dict]:
    out = Path(cfg.paths.output_dir)
    return [json.loads((out / f"restart_{i}" / "metrics.json").read_text()) for i in range(n)]


def _both(train_cfg, *overrides, n: int):
    runs = {}
    for backend in ("sequential", "batched"):
        cfg = train_cfg(
            *QUIET, *overrides, f"restarts={n}", f"restarts_backend={backend}", out=backend
        )
        train(cfg)
        runs[backend] = (cfg, _members(cfg, n))
    return runs


def _assert_same(seq: dict, bat: dict) -> None:
    assert (bat["epochs"], bat["best_epoch"], bat["seed"]) == (
        seq["epochs"],
        seq["best_epoch"],
        seq["seed"],
    )
    for split in ("train", "val", "test"):
        assert bat[split].keys() == seq[split].keys()
        assert bat[split]["acc"] == seq[split]["acc"], split
        assert bat[split]["loss"] == pytest.approx(seq[split]["loss"], abs=1e-4), split


def test_each_member_has_the_metrics_of_its_sequential_restart(train_cfg):
    runs = _both(train_cfg, "trainer.max_epochs=4", n=3)
    (seq_cfg, seq), (bat_cfg, bat) = runs["sequential"], runs["batched"]
    for s, b in zip(seq, bat, strict=True):
        _assert_same(s, b)
    assert len({m["val"]["loss"] for m in bat}) == 3  # three seeds, three models
    # the same initial weights: the checkpoints hold the same keys and, here, the same tensors
    for i in range(3):
        a, b = (
            torch.load(
                Path(c.paths.output_dir) / f"restart_{i}/checkpoints/best.ckpt", weights_only=True
            )
            for c in (seq_cfg, bat_cfg)
        )
        assert a["state_dict"].keys() == b["state_dict"].keys() and a["epoch"] == b["epoch"]
        for k in a["state_dict"]:
            torch.testing.assert_close(b["state_dict"][k], a["state_dict"][k], atol=1e-5, rtol=0)
        assert b["deeptune"]["classes"] == a["deeptune"]["classes"]
    seq_run = json.loads((Path(seq_cfg.paths.output_dir) / "metrics.json").read_text())
    bat_run = json.loads((Path(bat_cfg.paths.output_dir) / "metrics.json").read_text())
    assert bat_run["restarts"]["seeds"] == seq_run["restarts"]["seeds"] == [42, 43, 44]
    assert (bat_run["restarts"]["backend"], seq_run["restarts"]["backend"]) == (
        "batched",
        "sequential",
    )
    assert bat_run["restarts"]["val"]["acc"]["runs"] == seq_run["restarts"]["val"]["acc"]["runs"]


def test_each_member_stops_early_where_its_sequential_restart_stops(train_cfg):
    runs = _both(
        train_cfg,
        "data=moons",
        "trainer.max_epochs=12",
        "callbacks.early_stopping.patience=1",
        "optimized_metric=val/loss",
        "optimized_mode=min",
        "callbacks.early_stopping.min_delta=0.02",
        n=3,
    )
    seq, bat = runs["sequential"][1], runs["batched"][1]
    for s, b in zip(seq, bat, strict=True):
        _assert_same(s, b)
    # each stopped early, at its own epoch: the later one kept training alone
    assert [m["epochs"] for m in bat] == [5, 3, 3]


def test_ensemble_eval_and_load_read_the_batched_run(train_cfg, tmp_path):
    runs = _both(train_cfg, "trainer.max_epochs=3", "ensemble=mean_prob", n=2)
    (seq_cfg, _), (bat_cfg, _) = runs["sequential"], runs["batched"]
    seq_run, bat_run = (
        json.loads((Path(c.paths.output_dir) / "metrics.json").read_text())
        for c in (seq_cfg, bat_cfg)
    )
    assert bat_run["ensemble"]["test"]["acc"] == seq_run["ensemble"]["test"]["acc"]
    out = Path(bat_cfg.paths.output_dir)
    ckpt = out / "restart_1" / "checkpoints" / "best.ckpt"
    member = _members(bat_cfg, 2)[1]
    from helpers.runs import compose_cfg

    tested = compose_cfg("eval", [f"ckpt_path={ckpt}"], tmp_path / "eval")
    evaluate(tested)
    figures = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert figures["test"]["acc"] == pytest.approx(member["test"]["acc"])
    from sklearn.datasets import load_digits

    x = load_digits().data[:20]
    labels = deeptune.load(ckpt).predict(x)
    ensemble = deeptune.load(out / "ensemble.yaml").predict(x)
    assert len(labels) == len(ensemble) == 20
    truth = load_digits().target[:20].astype(str)
    assert np.mean(np.asarray(labels).astype(str) == truth) > 0.5


def test_dropout_masks_are_drawn_per_member(train_cfg):
    cfg = train_cfg(
        *QUIET,
        "model.dropout=0.3",
        "trainer.max_epochs=2",
        "restarts=2",
        "restarts_backend=batched",
    )
    train(cfg)
    a, b = _members(cfg, 2)
    assert a["val"]["loss"] != b["val"]["loss"] and a["epochs"] == b["epochs"] == 2


REFUSED = [  # (the override, the key its one line names)
    ("model.norm=batch", "model.norm"),
    ("optimizer=lbfgs", "optimizer"),
    ("scheduler=cosine", "scheduler"),
    ("trainer.devices=2", "trainer.devices"),
    ("stepwise.strategy=lower_first", "stepwise.strategy"),
    ("model=cnn", "model"),
    ("model.compile=true", "model.compile"),
    ("trainer.accumulate_grad_batches=2", "trainer.accumulate_grad_batches"),
    ("debug=lr_find", "callbacks.lr_find"),
    ("debug=profile", "trainer.profiler"),
    ("trainer.precision=bf16-mixed", "trainer.precision"),
    ("+trainer.val_check_interval=0.5", "trainer.val_check_interval"),
    ("+trainer.min_steps=5", "trainer.min_steps"),
]


@pytest.mark.parametrize(("override", "key"), REFUSED, ids=[r[0] for r in REFUSED])
def test_what_it_cannot_batch_is_one_line(train_cfg, override, key):
    cfg = train_cfg("restarts=2", "restarts_backend=batched", override)
    with pytest.raises(ConfigError) as err:
        validate(cfg)
    message = str(err.value)
    assert message.startswith(f"{key}=") and "\n" not in message, message
    assert "restarts_backend=sequential" in message


def test_a_nan_loss_stops_the_batched_run_as_it_stops_a_restart(train_cfg):
    from deeptune.callbacks.nonfinite import NonFiniteLoss

    cfg = train_cfg("restarts=2", "restarts_backend=batched", "optimizer=sgd", "optimizer.lr=1e6")
    with pytest.raises(NonFiniteLoss, match=r"^restart_0: the training loss became .* epoch 1"):
        train(cfg)


def test_the_backend_is_checked_by_the_schema(train_cfg):
    with pytest.raises(ConfigError, match="restarts_backend"):
        validate(train_cfg("restarts_backend=parallel"))


@pytest.mark.parametrize(
    "override",
    [
        "optimizer=momentum",
        "optimizer=adamw",
        "model.norm=layer",
        "trainer.gradient_clip_val=0.05",  # small enough to clip most steps
        "trainer.gradient_clip_val=0.01 trainer.gradient_clip_algorithm=value",
    ],
)
def test_other_optimisers_layer_norm_and_clipping_match_too(train_cfg, override):
    runs = _both(train_cfg, "data=moons", "trainer.max_epochs=3", *override.split(), n=2)
    for s, b in zip(runs["sequential"][1], runs["batched"][1], strict=True):
        _assert_same(s, b)


def test_resume_reads_the_finished_members_back(train_cfg):
    overrides = (*QUIET, "data=moons", "trainer.max_epochs=2", "restarts=3")
    cfg = train_cfg(*overrides, "restarts_backend=batched")
    train(cfg)
    first = _members(cfg, 3)
    out = Path(cfg.paths.output_dir)
    (out / "restart_2" / "metrics.json").unlink()  # as if interrupted before the last member
    (out / "metrics.json").unlink()
    train(cfg)
    again = _members(cfg, 3)
    assert again[:2] == first[:2]  # read back, not fitted again
    _assert_same(first[2], again[2])


# Per-member hyper-parameters (a batched sweep): members built from one config that differ in
# MEMBER_KEYS only, each compared with the plain fit of its own config.


def _sweep(train_cfg, base: list[str], members: list[dict]):
    """(sequential metrics, batched metrics, member configs) of one config per `members` entry
    (its dotted overrides), all with the same seed: any difference is the hyper-parameters'."""
    from deeptune import builders
    from deeptune.config import derive
    from deeptune.run import batched

    cfg = train_cfg(*QUIET, *base)
    root = Path(cfg.paths.output_dir)
    seq, parts = [], []
    for i, updates in enumerate(members):
        one = derive(cfg, {**updates, "paths.output_dir": str(root / f"seq_{i}")})
        train(one)
        seq.append(json.loads((root / f"seq_{i}" / "metrics.json").read_text()))
        parts.append(derive(cfg, {**updates, "paths.output_dir": str(root / f"bat_{i}")}))
    batched.check_group(parts)
    for part in parts:
        validate(part)
    bat = batched.fit_members(parts, builders.data(parts[0]))
    for part, metrics in zip(parts, bat, strict=True):
        metrics["seed"] = part.seed
    return seq, bat, parts


SWEEPS = {
    "adam": (
        ["optimizer=adam"],
        [
            {"optimizer.lr": 1e-3},
            {"optimizer.lr": 1e-2, "optimizer.weight_decay": 1e-3},
            {"optimizer.lr": 3e-3, "optimizer.betas": [0.8, 0.99]},
        ],
    ),
    "momentum": (
        ["optimizer=momentum"],
        [
            {"optimizer.lr": 0.05, "optimizer.momentum": 0.9},
            {"optimizer.lr": 0.01, "optimizer.momentum": 0.5},
            {"optimizer.lr": 0.05, "optimizer.momentum": 0.0, "optimizer.weight_decay": 1e-2},
        ],
    ),
    "clipped": (
        ["optimizer=sgd", "trainer.gradient_clip_val=0.05"],
        [{"optimizer.lr": 0.05}, {"optimizer.lr": 0.2}],
    ),
}


@pytest.mark.parametrize("name", SWEEPS)
def test_members_with_their_own_hyper_parameters_match_their_own_fits(train_cfg, name):
    base, members = SWEEPS[name]
    seq, bat, _ = _sweep(train_cfg, ["data=moons", "trainer.max_epochs=3", *base], members)
    for s, b in zip(seq, bat, strict=True):
        _assert_same(s, b)
    assert len({m["val"]["loss"] for m in bat}) == len(members)  # one seed, different models


def test_each_member_of_a_sweep_stops_early_where_its_own_fit_stops(train_cfg):
    seq, bat, _ = _sweep(
        train_cfg,
        [
            "data=moons",
            "optimizer=sgd",
            "trainer.max_epochs=12",
            "callbacks.early_stopping.patience=1",
            "optimized_metric=val/loss",
            "optimized_mode=min",
            "callbacks.early_stopping.min_delta=0.02",
        ],
        [{"optimizer.lr": lr} for lr in (0.3, 0.05, 0.01)],
    )
    for s, b in zip(seq, bat, strict=True):
        _assert_same(s, b)
    assert len({m["epochs"] for m in bat}) > 1  # they stopped at different epochs


def test_members_with_their_own_dropout_rates(train_cfg):
    rates = [0.0, 0.2, 0.5]
    seq, bat, parts = _sweep(
        train_cfg,
        ["trainer.max_epochs=2"],
        [{"model.dropout": p} for p in rates],
    )
    _assert_same(seq[0], bat[0])  # rate 0 drops nothing: member 0 is its own plain fit
    assert len({m["val"]["loss"] for m in bat}) == 3  # one seed: the rates made the difference
    for s, b in zip(seq, bat, strict=True):  # the sequential fit's checkpoint layout
        a, c = (torch.load(m["best_checkpoint"], weights_only=True) for m in (s, b))
        assert a["state_dict"].keys() == c["state_dict"].keys()
    from deeptune.models.mlp import MLP

    net = deeptune.load(bat[2]["best_checkpoint"]).members[0].net
    assert isinstance(net, MLP) and net.hidden[0].dropout.p == 0.5


def test_a_member_whose_loss_goes_nan_stops_the_sweep(train_cfg):
    from deeptune import builders
    from deeptune.callbacks.nonfinite import NonFiniteLoss
    from deeptune.config import derive
    from deeptune.run import batched

    cfg = train_cfg(*QUIET, "optimizer=sgd")
    parts = [
        derive(cfg, {"optimizer.lr": lr, "paths.output_dir": f"{cfg.paths.output_dir}/{i}"})
        for i, lr in enumerate((0.05, 1e6))
    ]
    folder = re.escape(str(Path(parts[1].paths.output_dir)))  # the job's folder, not restart_1
    with pytest.raises(NonFiniteLoss, match=rf"^{folder}: the training loss became .* epoch 1"):
        batched.fit_members(parts, builders.data(parts[0]))


def test_members_that_differ_outside_member_keys_are_refused(train_cfg):
    from deeptune.config import derive
    from deeptune.run import batched

    cfg = train_cfg()
    lr = derive(cfg, {"optimizer.lr": 0.5, "seed": 7, "model.dropout": 0.1})
    wide = derive(cfg, {"model.width": 32})
    batched.check_group([cfg, lr])
    assert batched.group_key(cfg) == batched.group_key(lr) != batched.group_key(wide)
    with pytest.raises(ConfigError) as err:
        batched.check_group([cfg, lr, wide])
    message = str(err.value)
    assert message.startswith("model.width=32") and "\n" not in message, message
