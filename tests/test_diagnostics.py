"""When training goes wrong: gradient health, debug presets, the final-model report."""

import json
import logging
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml
from sklearn.metrics import classification_report, confusion_matrix

from deeptune import builders
from deeptune.cli import run_task
from deeptune.diagnostics.grad_health import layer_of, remedies
from deeptune.diagnostics.overfit import OverfitFailed
from deeptune.errors import ConfigError, TrainingError
from deeptune.train import train


def _metrics(cfg) -> dict:
    return json.loads((Path(cfg.paths.output_dir) / "metrics.json").read_text())


def test_deep_sigmoid_vanishes_and_relu_with_he_init_does_not(train_cfg, caplog):
    sigmoid = train_cfg("trainer.max_epochs=2", "model.depth=12", "model.activation=sigmoid")
    train(sigmoid)
    health = _metrics(sigmoid)["grad_health"]
    assert health["verdict"] == "vanishing"
    assert health["grad_ratio_first_last"] < 1e-2
    assert health["layers"][0] == "hidden.0" and health["layers"][-1] == "head"
    assert (Path(sigmoid.paths.output_dir) / "grad_health.png").stat().st_size > 10_000
    assert "vanishing gradients" in caplog.text and "try model.activation=relu" in caplog.text
    caplog.clear()

    relu = train_cfg(
        "trainer.max_epochs=2",
        "model.depth=12",
        "model.activation=relu",
        "model.init=kaiming_normal",
        out="relu",
    )
    train(relu)
    health = _metrics(relu)["grad_health"]
    assert health["verdict"] == "healthy" and "plot" not in health
    assert not (Path(relu.paths.output_dir) / "grad_health.png").exists()  # plot=auto
    assert health["grad_ratio_first_last"] > 1e-1
    assert "gradient health" not in caplog.text


def test_huge_learning_rate_explodes_and_clipping_bounds_the_norms(train_cfg):
    wild = train_cfg("trainer.max_epochs=3", "optimizer=sgd", "optimizer.lr=50")
    with pytest.raises(TrainingError, match="loss became nan"):
        train(wild)
    failed = _metrics(wild)
    assert failed["status"] == "failed"
    assert failed["grad_health"]["verdict"] == "exploding"

    # The norms are taken before clipping, and clipping bounds each SGD step by lr x clip. With
    # clip=1 (steps of 50) training stays chaotic: over 12 seeds x 1-2 threads the peak norm went
    # from 1.9 to 1530, thread count alone moving one seed from 104 to 1180. With clip=0.1 it
    # stayed between 1.7 and 8.1 in 37 runs (21 seeds, 1 to 8 threads): 1e2 is a 12x margin.
    clipped = train_cfg(
        "trainer.max_epochs=3",
        "optimizer=sgd",
        "optimizer.lr=50",
        "trainer.gradient_clip_val=0.1",
        out="clipped",
    )
    train(clipped)
    metrics = _metrics(clipped)
    assert metrics["status"] == "completed"
    health = metrics["grad_health"]
    assert health["verdict"] == "healthy"
    assert health["max_grad_norm"] is not None and health["max_grad_norm"] < 1e2
    assert all(e["max_grad_norm"] is not None for e in health["epochs"])


def test_grad_health_can_be_switched_off(train_cfg):
    cfg = train_cfg("callbacks.grad_health.enabled=false")
    train(cfg)
    assert "grad_health" not in _metrics(cfg)
    assert not (Path(cfg.paths.output_dir) / "grad_health.png").exists()


def test_layer_names_and_remedies():
    assert layer_of("hidden.3.linear.weight") == "hidden.3"
    assert layer_of("rnn.weight_hh_l1_reverse") == "rnn.l1"
    assert layer_of("head.bias") == "head"
    mlp = {"activation": "sigmoid", "init": "default", "depth": 12, "norm": "none"}
    tips = remedies("vanishing", mlp | {"residual": False}, None, 1e-3)
    assert tips[0].startswith("model.activation=relu") and any("xavier" in t for t in tips)
    assert any("shallower" in t for t in tips) and any("residual=true" in t for t in tips)
    rnn = {"cell": "rnn", "hidden": 32, "layers": 1}
    assert remedies("vanishing", rnn, None, 1e-3) == [
        "model.cell=lstm or gru: gated cells keep gradients alive over time"
    ]
    tips = remedies("exploding", {"activation": "relu", "init": "default", "depth": 2}, None, 50.0)
    assert tips[0].startswith("trainer.gradient_clip_val") and any("lr=5:" in t for t in tips)
    assert not any("clip" in t for t in remedies("exploding", {}, 1.0, 50.0))
    dead = remedies("vanishing", {"activation": "relu", "init": "kaiming_normal"}, 1.0, 50.0, True)
    assert dead[0].startswith("optimizer.lr=5:") and "leaky_relu" in dead[1]


@pytest.mark.parametrize(("lr", "verdict"), [(None, "PASS"), (1e-7, "FAIL")])
def test_overfit_one_batch(train_cfg, capsys, lr, verdict):
    """PASS is printed; FAIL is the error of the run (one line; exit status 1 from train.py)."""
    extra = [] if lr is None else [f"optimizer.lr={lr}", "trainer.max_epochs=30"]
    cfg = train_cfg("debug=overfit", *extra, fast=False)
    if verdict == "PASS":
        train(cfg)
        assert "overfit check: PASS" in capsys.readouterr().out.splitlines()[-1]
    else:
        with pytest.raises(OverfitFailed, match=r"^overfit check: FAIL .*raise optimizer\.lr"):
            train(cfg)
        assert "overfit check" not in capsys.readouterr().out  # said once, as the error
        with pytest.raises(SystemExit) as stop:  # as train.py ends: one line, exit status 1
            run_task(train, cfg)
        assert stop.value.code == 1
        (line,) = capsys.readouterr().err.splitlines()
        assert line.startswith("error: overfit check: FAIL train/loss ")
    result = _metrics(cfg)["overfit"]
    assert result["passed"] is (verdict == "PASS")
    if verdict == "PASS":
        assert result["final_loss"] < 0.05 and result["epochs"] < 300  # stopped once it fitted


def test_confusion_matrix_and_per_class_figures_match_scikit_learn(train_cfg, capsys):
    cfg = train_cfg("trainer.max_epochs=3", "report.confusion=true")
    train(cfg)
    out_dir = Path(cfg.paths.output_dir)
    report = _metrics(cfg)["report"]
    assert (out_dir / "confusion_matrix.png").stat().st_size > 10_000
    assert "per-class figures on the test split" in capsys.readouterr().out

    # The same predictions, made independently from the kept checkpoint.
    table = builders.source(cfg)
    dm = builders.datamodule(cfg, table)
    dm.setup()
    model = builders.module(cfg, dm)
    best = torch.load(_metrics(cfg)["best_checkpoint"], weights_only=True)["state_dict"]
    model.load_state_dict(best)
    model.eval()
    x, y = dm.tensors["test"]
    with torch.no_grad():
        preds = model(x).argmax(-1)
    expected = classification_report(y, preds, output_dict=True, zero_division=0)
    for name, row in report["classes"].items():
        for key in ("precision", "recall"):
            assert row[key] == pytest.approx(expected[name][key], abs=1e-6)
        assert row["f1"] == pytest.approx(expected[name]["f1-score"], abs=1e-6)
        assert row["support"] == expected[name]["support"]
    for average in ("macro", "weighted"):
        assert report[average]["f1"] == pytest.approx(expected[f"{average} avg"]["f1-score"], 1e-6)
        assert report[average]["precision"] == pytest.approx(
            expected[f"{average} avg"]["precision"], abs=1e-6
        )
    assert report["accuracy"] == pytest.approx(expected["accuracy"], abs=1e-6)
    assert report["confusion_matrix"] == confusion_matrix(y, preds).tolist()


def test_tsne_of_a_hidden_layer(train_cfg):
    cfg = train_cfg("report.tsne=true", "report.tsne_samples=80", "report.tsne_layer=hidden.0")
    train(cfg)
    report = _metrics(cfg)["report"]
    assert report["tsne_samples"] == 80 and report["tsne_png"] == "tsne.png"
    assert (Path(cfg.paths.output_dir) / "tsne.png").stat().st_size > 10_000


def test_unknown_tsne_layer_fails_before_training(train_cfg):
    cfg = train_cfg("report.tsne=true", "report.tsne_layer=hidden.9")
    with pytest.raises(ConfigError, match=r"report.tsne_layer.*hidden\.0"):
        train(cfg)
    assert not (Path(cfg.paths.output_dir) / "metrics.json").exists()


def test_report_is_logged_to_wandb_offline(train_cfg, monkeypatch, tmp_path):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(tmp_path / "wandb-config"))
    cfg = train_cfg("logger=wandb", "report.confusion=true", "callbacks.grad_health.plot=true")
    train(cfg)
    (run,) = (Path(cfg.paths.output_dir) / "wandb").glob("offline-run-*")
    media = run / "files" / "media"
    assert list((media / "images" / "report").glob("confusion_matrix_*.png"))
    assert list((media / "images").glob("grad_health_*.png"))
    (table,) = (media / "table" / "report").glob("per_class_*.table.json")
    assert len(json.loads(table.read_text())["data"]) == 10  # one row per digit


def test_lr_find_suggests_plots_and_applies(train_cfg, caplog, capsys):
    caplog.set_level(logging.INFO)
    cfg = train_cfg("debug=lr_find", "callbacks.lr_find.num_training_steps=40")
    train(cfg)
    out_dir = Path(cfg.paths.output_dir)
    found = _metrics(cfg)["lr_find"]
    assert 1e-6 <= found["suggestion"] <= 1.0 and found["applied"]
    assert (out_dir / "lr_find.png").stat().st_size > 10_000
    (said,) = [r for r in caplog.records if "lr_find: suggested learning rate" in r.message]
    assert said.levelno == logging.INFO  # a result, not a warning
    out, err = capsys.readouterr()
    assert "lr_find: suggested learning rate" in out
    assert "Finding best initial lr" not in err  # no bar off a terminal
    assert found["lr"] == pytest.approx(found["suggestion"])
    # the run trained at that rate (the LR monitor's column), and config.yaml is the config given
    logged = pd.read_csv(out_dir / "csv" / "metrics.csv")["lr-Adam"].dropna()
    assert logged.iloc[0] == pytest.approx(found["suggestion"])
    saved = yaml.safe_load((out_dir / "config.yaml").read_text())
    assert saved["optimizer"]["lr"] == 0.001


def test_profile_and_anomaly_presets(train_cfg):
    profiled = train_cfg("debug=profile", "trainer.max_epochs=1")
    train(profiled)
    report = (Path(profiled.paths.output_dir) / "fit-profile.txt").read_text()
    assert "run_training_epoch" in report
    anomaly = train_cfg("debug=anomaly", out="anomaly")
    assert anomaly.trainer.detect_anomaly is True
    train(anomaly)
    assert _metrics(anomaly)["status"] == "completed"


def test_plain_rnn_loses_the_first_time_step(train_cfg, caplog):
    cfg = train_cfg(
        "model=rnn",
        "model.cell=rnn",
        "data=adding",
        "data.seq_len=40",
        "data.source.n_samples=300",
        "callbacks.grad_health.every_n_steps=2",
    )
    train(cfg)
    health = _metrics(cfg)["grad_health"]
    assert health["layers"] == ["rnn.l0", "head"]
    assert health["grad_ratio_first_last_step"] < 1e-2 and health["verdict"] == "vanishing"
    assert "first time step's input" in caplog.text and "try model.cell=lstm or gru" in caplog.text
