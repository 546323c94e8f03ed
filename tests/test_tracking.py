"""Runs that describe themselves: every logger holds the run's hyper-parameters and provenance,
metrics.json its provenance, and a sweep's runs are grouped. Real loggers, read back with each
tracker's own reader."""

import json
import sys
from pathlib import Path

import pytest
import yaml
from helpers.runs import ROOT, run_cli
from helpers.wandb_file import run_info

from deeptune.errors import ConfigError
from deeptune.train import train

KEYS = ("model.depth", "optimizer.lr", "seed", "n_params", "provenance.git.commit")


def _out(cfg) -> Path:
    return Path(cfg.paths.output_dir)


def _mlflow_run(cfg):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(cfg.logger.mlflow.tracking_uri)
    experiment = client.get_experiment_by_name(cfg.logger.mlflow.experiment_name)
    (run,) = client.search_runs([experiment.experiment_id])
    return run


def test_metrics_json_has_provenance(train_cfg):
    cfg = train_cfg()
    train(cfg)
    prov = json.loads((_out(cfg) / "metrics.json").read_text())["provenance"]
    assert prov["versions"]["torch"] and prov["versions"]["python"] and prov["device"]
    assert set(prov["git"]) == {"commit", "dirty"}  # null outside a checkout
    assert prov["git"]["commit"] is None or len(prov["git"]["commit"]) == 40


def test_wandb_config_holds_hyperparameters(train_cfg, tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(tmp_path / "wandb-config"))
    cfg = train_cfg("logger=wandb", "model.depth=3", "optimizer.lr=0.0123", "seed=5")
    train(cfg)
    (log,) = (_out(cfg) / "wandb").glob("offline-run-*/run-*.wandb")
    config, _ = run_info(log)
    assert config["model.depth"] == 3 and config["optimizer.lr"] == pytest.approx(0.0123)
    assert config["seed"] == 5 and config["n_params"] > 0
    assert config["provenance.versions.torch"]


def test_wandb_is_silent_and_not_anonymous_unless_told(tmp_path):
    """W&B's own 35 console lines are off (its `silent` setting) unless the config says; the
    `anonymous` setting Lightning always passed (W&B warned on every run) is not passed."""
    import wandb

    from deeptune.loggers.wandb import WandbLogger

    logger = WandbLogger(save_dir=str(tmp_path), offline=True)  # no W&B run starts yet
    assert "anonymous" not in logger._wandb_init and logger._wandb_init["settings"].silent
    told = WandbLogger(save_dir=str(tmp_path), offline=True, settings={"silent": False})
    assert told._wandb_init["settings"].silent is False
    own = wandb.Settings(quiet=True)
    assert (
        WandbLogger(save_dir=str(tmp_path), offline=True, settings=own)
        ._wandb_init["settings"]
        .silent
    )


def test_tensorboard_has_hparams_with_the_metric(train_cfg):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import plugin_data_pb2

    cfg = train_cfg("logger=tensorboard", "model.depth=3")
    result = train(cfg)
    experiment, values = None, []
    for events in sorted((_out(cfg) / "tensorboard").glob("events.out.tfevents.*")):
        acc = EventAccumulator(str(events), size_guidance={"tensors": 0})
        acc.Reload()
        try:
            content = acc.PluginTagToContent("hparams")
        except KeyError:  # an event file of the later validate / test: no hparams in it
            content = {}
        if "_hparams_/experiment" in content:
            data = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/experiment"])
            experiment = data.experiment
        if "hp/val/acc" in acc.Tags()["scalars"]:
            values += [(e.wall_time, e.value) for e in acc.Scalars("hp/val/acc")]
    assert experiment is not None
    assert [m.name.tag for m in experiment.metric_infos] == ["hp/val/acc"]
    assert {"model.depth", "optimizer.lr", "seed"} <= {h.name for h in experiment.hparam_infos}
    # The last logged, by time: event files named in one second do not sort by their order.
    assert max(values)[1] == pytest.approx(result)  # the kept model's val/acc


def test_csv_and_mlflow_hold_the_same_keys(train_cfg):
    cfg = train_cfg("logger=mlflow", "model.depth=3", "optimizer.lr=0.0123", "seed=5")
    result = train(cfg)
    csv = yaml.safe_load((_out(cfg) / "csv" / "hparams.yaml").read_text())
    run = _mlflow_run(cfg)
    params = run.data.params
    assert set(KEYS) <= set(params), set(KEYS) - set(params)
    assert set(csv) == set(params), set(csv) ^ set(params)
    assert params["model.depth"] == "3" and float(params["optimizer.lr"]) == 0.0123
    assert params["seed"] == "5" and csv["model.depth"] == 3
    assert run.data.metrics["val/acc"] == pytest.approx(result)
    assert run.data.tags["mlflow.runName"] == _out(cfg).name
    assert "sweep" not in run.data.tags  # a single run is in no sweep


def test_mlflow_missing_is_one_line(train_cfg, monkeypatch):
    monkeypatch.setitem(sys.modules, "mlflow", None)  # as if it were not installed
    with pytest.raises(ConfigError, match=r'^logger\.mlflow.*pip install "deeptune\[mlflow\]"'):
        train(train_cfg("logger=mlflow"))


@pytest.mark.slow
def test_a_multirun_is_one_wandb_group_and_one_mlflow_sweep(tmp_path):
    sweep = run_cli(
        str(ROOT / "train.py"),
        "-m",
        "seed=1,2",
        "logger=many",
        "trainer.max_epochs=1",
        cwd=tmp_path,
        env={"WANDB_MODE": "offline", "WANDB_CONFIG_DIR": str(tmp_path / "wandb-config")},
    )
    assert sweep.returncode == 0, sweep.stderr
    (folder,) = (tmp_path / "multirun").glob("*/*")
    name = str(folder.relative_to(tmp_path))
    logs = [next((folder / job / "wandb").glob("offline-run-*/run-*.wandb")) for job in "01"]
    assert {run_info(log)[1] for log in logs} == {name}  # the W&B runs' group
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{tmp_path / 'mlruns.db'}")
    runs = client.search_runs([client.get_experiment_by_name("deeptune").experiment_id])
    assert sorted(r.data.tags["mlflow.runName"] for r in runs) == ["0", "1"]
    assert {r.data.tags["sweep"] for r in runs} == {name}
    assert {r.data.params["choices.logger"] for r in runs} == {"many"}


@pytest.fixture
def in_a_sweep(tmp_path):
    """Hydra's config of job 3 of a multirun swept into tmp_path/multirun/d/t, as a launcher
    sets it; cleared afterwards."""
    from hydra import compose, initialize_config_dir
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import open_dict

    from deeptune.config import CONFIG_DIR

    with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
        full = compose("train", return_hydra_config=True)
    with open_dict(full):
        full.hydra.mode = "MULTIRUN"
        full.hydra.sweep.dir = str(tmp_path / "multirun" / "d" / "t")
        full.hydra.runtime.output_dir = full.hydra.sweep.dir + "/3"
    HydraConfig.instance().set_config(full)
    yield "multirun/d/t"
    HydraConfig.instance().cfg = None


def test_a_sweeps_restarts_are_grouped_under_it(train_cfg, tmp_path, in_a_sweep):
    from deeptune.loggers.hparams import grouping
    from deeptune.run import repeat

    cfg = train_cfg("logger=many", "restarts=2", out="multirun/d/t/3")
    cfg.paths.root_dir = str(tmp_path)
    assert grouping(cfg)["logger.wandb.group"] == in_a_sweep
    assert grouping(cfg)["logger.mlflow.tags"] == {"sweep": in_a_sweep}
    assert grouping(cfg)["logger.mlflow.run_name"] == "3"
    parts = repeat.variants(cfg)
    assert [p.logger.wandb.group for p in parts] == [f"{in_a_sweep}/3"] * 2
    assert "logger.wandb.group" not in grouping(parts[0])  # the restarts keep theirs
    assert grouping(parts[0])["logger.mlflow.run_name"] == "restart_0"
