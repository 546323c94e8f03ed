"""Runs that describe themselves (issue 14): checkpoints that load alone, predict.py, eval.py on
new data."""

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from helpers.runs import compose_cfg, run_cli

import deeptune
from deeptune import builders
from deeptune.errors import ConfigError
from deeptune.eval import evaluate
from deeptune.models.module import Classifier
from deeptune.predict import predict
from deeptune.train import train


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    """One trained digits run: (its folder, its metrics, the raw test rows, their labels)."""
    out = tmp_path_factory.mktemp("digits") / "run"
    overrides = ["threads=1", "logger=csv", "trainer.max_epochs=2", "model.norm=batch"]
    cfg = compose_cfg("train", overrides, out)
    train(cfg)
    table = builders.source(cfg)
    test = builders.datamodule(cfg, table).indices["test"]  # the run's split, unscaled rows
    labels = np.asarray(table.classes)[table.y[test]]
    metrics = json.loads((out / "metrics.json").read_text())
    return out, metrics, table.x[test], labels


def _test_csv(path: Path, x, labels=None, **extra) -> Path:
    frame = pd.DataFrame(x, columns=[f"x{i}" for i in range(x.shape[1])])
    if labels is not None:
        frame["label"] = labels
    for name, values in extra.items():
        frame.insert(0, name, values)
    frame.to_csv(path, index=False)
    return path


def test_a_checkpoint_copied_alone_loads_and_predicts(digits_run, tmp_path):
    out, metrics, x, labels = digits_run
    alone = tmp_path / "empty" / "model.ckpt"
    alone.parent.mkdir()
    shutil.copy(out / "checkpoints" / "best.ckpt", alone)
    saved = torch.load(alone, weights_only=True)["deeptune"]
    assert saved["classes"] == [str(i) for i in range(10)] and saved["input_shape"] == [64]
    assert len(saved["scaler"]["mean"]) == 64 and saved["provenance"]["versions"]["torch"]

    model = deeptune.load(alone)
    assert all(not m.training for m in model.members)
    assert (model.predict(x) == labels).mean() == pytest.approx(metrics["test"]["acc"], abs=1e-7)
    frame = pd.DataFrame(x, columns=saved["features"]).iloc[:, ::-1]  # matched by name
    np.testing.assert_array_equal(model.predict(frame), model.predict(x))
    np.testing.assert_allclose(model.predict_proba(x).sum(1), 1.0, rtol=1e-5)

    module = Classifier.load_from_checkpoint(alone)
    assert not module.training
    assert (module.predict(x) == labels).mean() == pytest.approx(metrics["test"]["acc"], abs=1e-7)


def test_an_old_checkpoint_loads_through_its_run_folder(digits_run, tmp_path):
    out, metrics, x, labels = digits_run
    run = tmp_path / "old"
    shutil.copytree(out, run)
    ckpt = run / "checkpoints" / "best.ckpt"
    state = torch.load(ckpt, weights_only=True)
    del state["deeptune"]  # as written before checkpoints described themselves
    torch.save(state, ckpt)
    model = deeptune.load(ckpt)
    assert (model.predict(x) == labels).mean() == pytest.approx(metrics["test"]["acc"], abs=1e-7)


def test_predict_csv_reproduces_the_test_accuracy(digits_run, tmp_path):
    out, metrics, x, labels = digits_run
    ids = np.arange(len(x)) * 7
    source = _test_csv(tmp_path / "new.csv", x, id=ids)
    preds = tmp_path / "preds.csv"
    overrides = [f"ckpt_path={out / 'checkpoints' / 'best.ckpt'}", f"input={source}"]
    overrides += [f"output={preds}", "id_column=id", "chunk_size=100"]  # 270 rows: 3 chunks
    cfg = compose_cfg("predict", overrides, tmp_path / "predict")
    assert predict(cfg) == len(x)
    result = pd.read_csv(preds)
    assert list(result.columns) == ["id", "prediction", *(f"prob_{i}" for i in range(10))]
    np.testing.assert_array_equal(result["id"], ids)
    acc = (result["prediction"].astype(str) == labels).mean()
    assert acc == pytest.approx(metrics["test"]["acc"], abs=1e-7)


def test_predict_refuses_columns_that_do_not_match(digits_run, tmp_path):
    out, _, x, _ = digits_run
    frame = pd.DataFrame(x, columns=[f"x{i}" for i in range(64)]).drop(columns=["x3"])
    frame["extra"] = 1.0
    frame.to_csv(source := tmp_path / "bad.csv", index=False)
    preds = tmp_path / "preds.csv"
    cfg = compose_cfg(
        "predict", [f"ckpt_path={out / 'checkpoints' / 'best.ckpt'}", f"input={source}"], tmp_path
    )
    cfg.output = str(preds)
    with pytest.raises(ConfigError, match=r"missing \['x3'\]; extra \['extra'\]") as err:
        predict(cfg)
    assert err.value.key == "input" and "\n" not in str(err.value)
    assert list(tmp_path.glob("*preds.csv*")) == []  # nothing half-written


def test_eval_on_a_new_labelled_table(digits_run, tmp_path):
    out, metrics, x, labels = digits_run
    ckpt = out / "checkpoints" / "best.ckpt"
    source = _test_csv(tmp_path / "labelled.csv", x, labels.astype(int))
    data = ["data=csv", f"data.source.path={source}", "data.source.target=label"]
    cfg = compose_cfg("eval", [f"ckpt_path={ckpt}", *data], tmp_path / "eval")
    assert evaluate(cfg) == pytest.approx(metrics["test"]["acc"], abs=1e-7)
    report = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert report["test"]["f1"] == pytest.approx(metrics["test"]["f1"], abs=1e-6)
    assert report["test"]["loss"] == pytest.approx(metrics["test"]["loss"], abs=1e-4)

    unseen = labels.astype(int)
    unseen[0] = 11
    _test_csv(other := tmp_path / "unseen.csv", x, unseen)
    data[1] = f"data.source.path={other}"
    cfg = compose_cfg("eval", [f"ckpt_path={ckpt}", *data], tmp_path / "eval2")
    with pytest.raises(ConfigError, match=r"label\(s\) \['11'\] were not seen in training"):
        evaluate(cfg)


def test_predict_an_ensemble_reproduces_its_test_figure(train_cfg, tmp_path):
    cfg = train_cfg("restarts=2", "ensemble=mean_prob", "trainer.max_epochs=2")
    train(cfg)
    out = Path(cfg.paths.output_dir)
    figure = json.loads((out / "metrics.json").read_text())["ensemble"]["test"]["acc"]
    table = builders.source(cfg)
    test = builders.datamodule(cfg, table).indices["test"]
    source = _test_csv(tmp_path / "new.csv", table.x[test])
    preds = tmp_path / "preds.csv"
    overrides = [f"ckpt_path={out / 'ensemble.yaml'}", f"input={source}", f"output={preds}"]
    predict(compose_cfg("predict", overrides, tmp_path / "predict"))
    labels = np.asarray(table.classes)[table.y[test]]
    acc = (pd.read_csv(preds)["prediction"].astype(str) == labels).mean()
    assert acc == pytest.approx(figure, abs=1e-7)
    assert (deeptune.load(out / "ensemble.yaml").predict(table.x[test]) == labels).mean() == acc
    labelled = _test_csv(tmp_path / "labelled.csv", table.x[test], labels.astype(int))
    data = ["data=csv", f"data.source.path={labelled}", "data.source.target=label"]
    eval_cfg = compose_cfg("eval", [f"ckpt_path={out / 'ensemble.yaml'}", *data], tmp_path / "e")
    assert evaluate(eval_cfg) == pytest.approx(figure, abs=1e-7)


@pytest.mark.slow
def test_predict_cli_says_which_columns_are_wrong(digits_run, tmp_path):
    out, _, x, _ = digits_run
    frame = pd.DataFrame(x, columns=[f"x{i}" for i in range(64)]).drop(columns=["x0"])
    frame.to_csv(tmp_path / "bad.csv", index=False)
    ckpt = out / "checkpoints" / "best.ckpt"
    root = Path(__file__).resolve().parents[1]
    done = run_cli(
        str(root / "predict.py"), f"ckpt_path={ckpt}", "input=bad.csv", "output=p.csv", cwd=tmp_path
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "error: input='bad.csv' is invalid: its columns do not match the training features: "
        "missing ['x0']"
    ]
    assert not (tmp_path / "p.csv").exists()


def test_predict_npz_for_a_sequence_regression(train_cfg, tmp_path):
    """A sequence model reads an .npz; a regression writes the predicted number."""
    data = ["model=rnn", "data=adding", "data.seq_len=6", "data.source.n_samples=300"]
    cfg = train_cfg(*data)
    train(cfg)
    out = Path(cfg.paths.output_dir)
    mse = json.loads((out / "metrics.json").read_text())["test"]["mse"]
    table = builders.source(cfg)
    test = builders.datamodule(cfg, table).indices["test"]
    np.savez(source := tmp_path / "new.npz", x=table.x[test], row=test)
    preds = tmp_path / "preds.csv"
    overrides = [f"ckpt_path={out / 'checkpoints' / 'best.ckpt'}", f"input={source}"]
    overrides += [f"output={preds}", "id_column=row"]
    predict(compose_cfg("predict", overrides, tmp_path / "predict"))
    result = pd.read_csv(preds)
    assert list(result.columns) == ["row", "prediction"]
    np.testing.assert_array_equal(result["row"], test)
    assert ((result["prediction"] - table.y[test]) ** 2).mean() == pytest.approx(mse, rel=1e-4)


def test_a_checkpoint_config_is_data_not_code(digits_run, tmp_path):
    """A checkpoint's saved config naming an unknown target is refused before anything is built;
    trust_config=True lets a legitimate custom class through."""
    out, _, x, _ = digits_run
    state = torch.load(out / "checkpoints" / "best.ckpt", weights_only=True)
    state["deeptune"]["config"]["model"]["_target_"] = "os.system"
    torch.save(state, ckpt := tmp_path / "model.ckpt")
    with pytest.raises(ConfigError, match=r"model\._target_='os.system'.*trust_config=true"):
        deeptune.load(ckpt)
    with pytest.raises(ConfigError, match="trust_config=true"):
        Classifier.load_from_checkpoint(ckpt)
