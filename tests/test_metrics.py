"""The `metrics` group: torchmetrics nodes logged beside the task's own, watched by checkpoints,
early stopping and sweeps, combined by ensembles, rebuilt by eval.py, refused in one line."""

import json
from pathlib import Path

import numpy as np
import optuna
import pandas as pd
import pytest
import torch
import yaml
from helpers.runs import compose_cfg
from hydra import compose, initialize_config_dir
from hydra.core.utils import JobReturn, JobStatus
from omegaconf import OmegaConf, open_dict
from sklearn.metrics import roc_auc_score

from deeptune import builders, trust
from deeptune.config import CONFIG_DIR, validate, validate_against_data
from deeptune.errors import ConfigError
from deeptune.eval import evaluate
from deeptune.metrics import class_suffixes
from deeptune.run import ensemble
from deeptune.run.saved import load_run
from deeptune.sweeps import report
from deeptune.train import train
from hydra_plugins.deeptune_optuna_sweeper import _impl, config

AUROC = ["metrics=classification", "optimized_metric=val/auroc"]
CLASSIFICATION = ("auroc", "top3_acc", "balanced_acc")


def read(folder: Path, name: str = "metrics.json") -> dict:
    return json.loads((folder / name).read_text())


def test_classification_metrics_are_logged_and_val_auroc_keeps_the_checkpoint_and_stops(
    train_cfg, tmp_path
):
    # min_delta=1: no later epoch counts as better, so early stopping on val/auroc must stop
    # the fit after patience epochs; the checkpoint keeps the best of those by val/auroc.
    cfg = train_cfg(
        *AUROC,
        "trainer.max_epochs=6",
        "callbacks.early_stopping.patience=2",
        "callbacks.early_stopping.min_delta=1.0",
        "data.batch_size=256",
    )
    assert cfg.callbacks.early_stopping.monitor == cfg.callbacks.model_checkpoint.monitor
    assert cfg.callbacks.early_stopping.monitor == "val/auroc"
    value = train(cfg)
    out = tmp_path / "run"
    metrics = read(out)
    assert metrics["epochs"] == 3  # epoch 1 sets the best, 2 and 3 do not beat it by 1
    names = {"acc", "f1", "loss", *CLASSIFICATION, *(f"recall_{c}" for c in range(10))}
    for split in ("train", "val", "test"):
        assert set(metrics[split]) == names, split
        recalls = [metrics[split][f"recall_{c}"] for c in range(10)]
        assert metrics[split]["balanced_acc"] == pytest.approx(np.mean(recalls), abs=1e-5)
        assert metrics[split]["top3_acc"] >= metrics[split]["acc"]
    assert value == metrics["val"]["auroc"]
    assert metrics["directions"]["auroc"] == "max" and metrics["directions"]["recall_3"] == "max"
    log = pd.read_csv(out / "csv" / "metrics.csv")
    per_epoch = log.dropna(subset=["val/auroc"]).groupby("epoch")["val/auroc"].last()
    per_epoch = per_epoch[per_epoch.index < 3]  # the fit's, not the kept model's validation
    assert per_epoch.nunique() == 3
    assert metrics["best_epoch"] == int(per_epoch.idxmax()) + 1  # 1-based
    assert metrics["val"]["auroc"] == pytest.approx(per_epoch.max(), abs=1e-6)


def test_regression_metrics_on_a_regression_data_set(train_cfg, tmp_path):
    cfg = train_cfg(
        "data=adding",
        "data.seq_len=8",
        "data.source.n_samples=600",
        "metrics=regression",
        "optimized_metric=val/mae",
        "optimized_mode=min",
    )
    assert train(cfg) == read(tmp_path / "run")["val"]["mae"]
    metrics = read(tmp_path / "run")
    for split in ("val", "test"):
        m = metrics[split]
        assert set(m) == {"mse", "r2", "loss", "mae", "mape"}
        assert 0 < m["mae"] ** 2 <= m["mse"]  # mean |e| squared never exceeds mean e^2
    assert metrics["directions"] == {"mae": "min", "mape": "min"}


def test_restarts_and_their_ensemble_report_every_metric_and_eval_rebuilds_them(
    train_cfg, tmp_path
):
    cfg = train_cfg("data=moons", *AUROC, "restarts=2", "ensemble=mean_prob")
    train(cfg)
    out = tmp_path / "run"
    metrics = read(out)
    runs = [read(out / f"restart_{i}") for i in range(2)]
    for split in ("val", "test"):
        spread = metrics["restarts"][split]["auroc"]
        assert spread["runs"] == [r[split]["auroc"] for r in runs]
        assert metrics[split]["auroc"] == pytest.approx(np.mean(spread["runs"]))
        assert {"auroc", "balanced_acc", "recall_0", "recall_1"} <= set(metrics["restarts"][split])
        assert "top3_acc" not in metrics[split]  # two classes: top-3 accuracy is always 1
    combined = metrics["ensemble"]
    assert {"acc", "f1", "auroc", "balanced_acc", "recall_0", "recall_1"} == set(combined["test"])

    # The ensemble's AUROC is of its mean probabilities (scikit-learn's, on the same split).
    members = [load_run(Path(r["best_checkpoint"]), ckpt=Path(r["best_checkpoint"])) for r in runs]
    dm = members[0].datamodule
    logits = torch.stack([ensemble.member_outputs(m.model, dm, ["test"])["test"] for m in members])
    probs = ensemble.probabilities(logits, "mean_prob")
    y = dm.tensors["test"][1].numpy()
    assert combined["test"]["auroc"] == pytest.approx(roc_auc_score(y, probs[:, 1]), abs=1e-5)

    # eval.py rebuilds the saved runs, torchmetrics targets and all, past the trust check.
    for ckpt, expected in [
        (Path(runs[0]["best_checkpoint"]), runs[0]["test"]),
        (out / ensemble.MANIFEST, combined["test"]),
    ]:
        evaluate(compose_cfg("eval", [f"ckpt_path={ckpt}"], tmp_path / "eval"))
        tested = read(tmp_path / "eval")["test"]
        for name in ("auroc", "balanced_acc", "recall_1"):
            assert tested[name] == pytest.approx(expected[name], abs=1e-6), (ckpt.name, name)


def test_per_class_values_are_named_after_the_data_sets_classes(train_cfg, tmp_path):
    rng = np.random.default_rng(0)
    labels = np.array(["cat", "dog", "sea lion"])[np.arange(240) % 3]
    frame = pd.DataFrame(rng.normal(size=(240, 2)), columns=["a", "b"]).assign(label=labels)
    frame.to_csv(tmp_path / "pets.csv", index=False)
    recall = "+metrics.recall={_target_:torchmetrics.classification.MulticlassRecall,average:null}"
    train(train_cfg("data=csv", f"data.source.path={tmp_path / 'pets.csv'}", recall))
    logged = set(read(tmp_path / "run")["val"])
    assert {"recall_cat", "recall_dog", "recall_sea_lion"} <= logged
    assert class_suffixes(["a b", "a_b"], 2) == ("0", "1")  # two names would read the same
    assert class_suffixes([], 2) == ("0", "1")


def test_a_sweeps_later_objectives_go_the_metrics_own_way():
    metrics = {
        "auroc": {"_target_": "torchmetrics.AUROC"},  # a task wrapper: higher is better
        "hinge": {"_target_": "torchmetrics.classification.MulticlassHingeLoss"},
    }
    cfg = OmegaConf.create(
        {"optimized_metric": ["val/acc", "val/auroc", "val/hinge"], "optimized_mode": "max"}
    )
    cfg.metrics = metrics
    objectives, directions = _impl._objectives(config.OptunaSweeperConf(), cfg)
    assert objectives == ["val/acc", "val/auroc", "val/hinge"]
    assert directions == ["maximize", "maximize", "minimize"]


def test_the_trust_check_takes_torchmetrics_metrics_only():
    assert trust.allowed("torchmetrics.classification.MulticlassAUROC")
    assert trust.allowed("torchmetrics.AUROC")  # a task wrapper is a Metric too
    for target in ("torchmetrics.functional.auroc", "torchmetrics.utilities.dim_zero_cat"):
        assert not trust.allowed(target), target
    saved = {"metrics": {"x": {"_target_": "torchmetrics.functional.auroc"}}}
    with pytest.raises(ConfigError, match=r"metrics\.x\._target_='torchmetrics.functional.auroc"):
        trust.check_saved_config(saved, Path("elsewhere/config.yaml"))


class _InProcess:
    """A launcher that runs each trial's train.py in this process, leaving a job folder as
    Hydra's would (the report reads its .hydra/overrides.yaml)."""

    def __init__(self, base: list[str], sweep: Path):
        self.base, self.sweep = base, sweep

    def launch(self, batch, initial_job_idx):
        returns = []
        for i, overrides in enumerate(batch):
            job = self.sweep / str(initial_job_idx + i)
            (job / ".hydra").mkdir(parents=True)
            (job / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(list(overrides)))
            result = JobReturn(status=JobStatus.COMPLETED)
            result.return_value = train(compose_cfg("train", [*self.base, *overrides], job))
            returns.append(result)
        return returns


def test_an_optuna_sweep_on_val_auroc_and_its_report(tmp_path, capsys):
    base = ["threads=1", "logger=csv", "callbacks=none", "data=moons", *AUROC]
    base += ["trainer.max_epochs=2", "data.source.n_samples=300"]
    sweep, storage = tmp_path / "sweep", f"sqlite:///{tmp_path}/s.db"
    with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
        sweep_cfg = compose("train", overrides=base, return_hydra_config=True)
    with open_dict(sweep_cfg):
        sweep_cfg.hydra.sweep.dir = str(sweep)
    settings = config.OptunaSweeperConf(
        storage=storage, study_name="auroc", n_trials=2, seed=0, sampler="random"
    )
    fake = type("Sweeper", (), {})()
    fake.settings, fake.config, fake.launcher = settings, sweep_cfg, _InProcess(base, sweep)
    fake.validate_batch_is_legal = lambda batch: None
    _impl.run_sweep(fake, ["optimizer.lr=interval(0.001, 0.03)"])

    study = optuna.load_study(study_name="auroc", storage=storage)
    assert study.direction.name == "MAXIMIZE" and len(study.trials) == 2
    for trial in study.trials:
        job = sweep / str(trial.number)
        assert trial.value == read(job)["val"]["auroc"]
        log = pd.read_csv(job / "csv" / "metrics.csv").dropna(subset=["val/auroc"])
        fit = log[log["epoch"] < 2]["val/auroc"]  # the final weights' validation comes after
        # the pruning callback reported val/auroc, epoch by epoch
        assert list(trial.intermediate_values.values()) == pytest.approx(list(fit))

    # test/balanced_acc is better higher: the report reads so from the jobs' metrics.json
    report.main([str(sweep), "--metric", "test/balanced_acc"])
    text = (sweep / "report.md").read_text()
    assert "- metric: `test/balanced_acc`, direction: max (higher is better)" in text
    every = text.split("## Every metric, in the jobs' order")[1].split("\n\n")[1].splitlines()
    header = [c.strip() for c in every[0].strip("|").split("|")]
    assert {"val/auroc", "val/balanced_acc", "val/recall_1", "test/auroc"} <= set(header)
    values = {read(sweep / str(n))["test"]["balanced_acc"] for n in range(2)}
    best = [c.strip() for c in every[2].strip("|").split("|")]
    assert float(best[header.index("test/balanced_acc")]) == pytest.approx(max(values), abs=1e-4)


REFUSED = [
    (
        ["data=adding", "metrics=classification"],
        r"metrics\.auroc\._target_=.* a classification metric cannot score a regression data set",
    ),
    (
        ["data=moons", "metrics=regression"],
        r"metrics\.mae\._target_=.* a regression metric cannot score a classification data set",
    ),
    (
        ["data=moons", "+metrics.x={_target_:torchmetrics.Nope}"],
        r"metrics\.x\._target_='torchmetrics.Nope' is invalid: no such class",
    ),
    (
        ["data=moons", "+metrics.x={_target_:torch.nn.Linear}"],
        r"metrics\.x\._target_='torch.nn.Linear' is invalid: must be a torchmetrics Metric",
    ),
    (
        ["data=moons", "+metrics.x={_target_:torchmetrics.AUROC,averag:macro}"],
        r"metrics\.x\.averag='macro' is invalid: ValueError: Unexpected keyword arguments",
    ),
    (
        ["data=moons", "+metrics.x={_target_:torchmetrics.AUROC,average:mean}"],
        r"metrics\.x\.average='mean' is invalid: ValueError: Expected argument `average`",
    ),
    (
        ["data=moons", "+metrics.x={_target_:torchmetrics.ConfusionMatrix}"],
        r"metrics\.x='torchmetrics.ConfusionMatrix' is invalid: returns \(2, 2\): a metric must",
    ),
    (
        ["data=moons", "metrics=classification", "optimized_metric=val/recall"],
        r"optimized_metric='val/recall' is invalid: metrics\.recall returns one value per class",
    ),
    (
        ["data=moons", "metrics=classification", "optimized_metric=val/top3_acc"],
        r"optimized_metric='val/top3_acc' is invalid: metrics\.top3_acc is not logged on moons",
    ),
    (
        ["data=moons", *AUROC, "optimized_mode=min"],
        r"optimized_mode='min' is invalid: val/auroc is better when higher: set optimized_mode",
    ),
    (
        ["data=moons", *AUROC, "callbacks.early_stopping.monitor=val/recall"],
        r"callbacks\.early_stopping\.monitor='val/recall' is invalid: metrics\.recall returns",
    ),
]
REFUSED_BEFORE_DATA = [
    (["optimized_metric=val/auroc"], r"val/loss, or a metric you add \(metrics=classification"),
    (["+metrics.acc={_target_:torchmetrics.AUROC}"], r"metrics\.acc=.* a task's own metric"),
    (["+metrics.x={average:macro}"], r"metrics\.x=.* a metric is a node with a _target_"),
    (["+metrics.top-1={_target_:torchmetrics.AUROC}"], r"metrics\.top-1=.* letters, digits"),
]


@pytest.mark.parametrize(("overrides", "message"), REFUSED + REFUSED_BEFORE_DATA)
def test_bad_metrics_are_one_line_errors_before_training(train_cfg, overrides, message):
    cfg = train_cfg(*overrides)
    with pytest.raises(ConfigError, match=message) as raised:
        validate(cfg)
        validate_against_data(cfg, builders.source(cfg))
    assert "\n" not in str(raised.value)
    if (overrides, message) in REFUSED:  # the schema phase lets it through: it needs the data
        validate(cfg)
