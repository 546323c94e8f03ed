"""Bad input: one line that names the key, the value and what is allowed; nothing half-written."""

from pathlib import Path

import numpy as np
import pytest
import torch
from helpers.runs import ROOT, run_cli

from deeptune.config import check_group_overrides
from deeptune.errors import ConfigError
from deeptune.train import train

BAD_VALUES = [
    ("model.depth=0", "model.depth=0 is invalid: must be an integer >= 1"),
    ("model.depth=abc", "model.depth='abc' is invalid: must be an integer >= 1"),
    ("model.activation=swishh", "model.activation='swishh' is invalid: must be one of relu, "),
    ("model.norm=group", "model.norm='group' is invalid: must be one of none, batch, layer"),
    ("model.init=he", "model.init='he' is invalid: must be one of default, uniform"),
    ("model.dropout=1.5", "model.dropout=1.5 is invalid: must be a number >= 0 and < 1"),
    ("model.residual=yes", "model.residual='yes' is invalid: must be true or false"),
    ("model.width=[8,0]", "model.width=[8, 0] is invalid: must be an integer >= 1"),
    ("model.width=[8,8,8]", "model.width=[8, 8, 8] is invalid: a list of widths needs one entry"),
    ("optimizer.lr=-1", "optimizer.lr=-1 is invalid: must be a number > 0"),
    (
        "optimizer.weight_decay=-0.1",
        "optimizer.weight_decay=-0.1 is invalid: must be a number >= 0",
    ),
    ("data.batch_size=0", "data.batch_size=0 is invalid: must be an integer >= 1"),
    ("data.val_fraction=1.2", "data.val_fraction=1.2 is invalid: must be a number > 0 and < 1"),
    ("seed=-3", "seed=-3 is invalid: must be an integer >= 0"),
    ("trainer.max_epochs=0", "trainer.max_epochs=0 is invalid: must be an integer >= 1"),
    ("ckpt_path=nope.ckpt", "ckpt_path='nope.ckpt' is invalid: no such file"),
    ("optimized_metric=val/auc", "optimized_metric='val/auc' is invalid: must be one of val/acc"),
    (
        "callbacks.grad_health.vanishing_ratio=2",
        "callbacks.grad_health.vanishing_ratio=2 is invalid: must be a number > 0 and < 1",
    ),
    ("report.tsne_samples=3", "report.tsne_samples=3 is invalid: must be an integer >= 10"),
]


@pytest.mark.parametrize(("override", "message"), BAD_VALUES, ids=[b[0] for b in BAD_VALUES])
def test_bad_value_is_named(train_cfg, override, message):
    cfg = train_cfg(override)
    with pytest.raises(ConfigError) as err:
        train(cfg)
    assert str(err.value).startswith(message)
    assert "\n" not in str(err.value)
    assert not (Path(cfg.paths.output_dir) / "metrics.json").exists()


# Accepted before the schema, each silently broke the run it was given to.
HARMFUL = [
    (
        ["scheduler=warmup", "scheduler.eta_min=-1"],
        "scheduler.eta_min=-1 is invalid: must be a number >= 0",
    ),
    (
        ["scheduler=cosine", "scheduler.eta_min=nan"],
        "scheduler.eta_min=nan is invalid: must be a number >= 0",
    ),
    (
        ["callbacks.early_stopping.min_delta=1e400"],
        "callbacks.early_stopping.min_delta=inf is invalid",
    ),
    (
        ["+data.batchsize=1000000"],
        "data.batchsize=1000000 is invalid: not a key of TensorDataModule",
    ),
    (
        ["~callbacks.model_checkpoint.monitor"],
        "callbacks.model_checkpoint.monitor=None is invalid: required",
    ),
]
# Raw tracebacks before the schema; now one line each.
TRACEBACKS = [
    (["callbacks.early_stopping.monitor=-1"], "callbacks.early_stopping.monitor=-1 is invalid"),
    (["callbacks.lr_monitor._target_=0"], "callbacks.lr_monitor._target_=0 is invalid"),
    (
        ["scheduler=plateau", "scheduler.mode=1.5"],
        "scheduler.mode=1.5 is invalid: must be one of min, max",
    ),
    (["trainer.log_every_n_steps="], "trainer.log_every_n_steps='' is invalid"),
    (["scheduler=cosine", "scheduler.T_max="], "scheduler.T_max='' is invalid"),
    (["data.seed=abc"], "data.seed='abc' is invalid: must be an integer >= 0"),
    (["logger=wandb", "logger.wandb.id=[a,b]"], "logger.wandb.id=['a', 'b'] is invalid"),
    (["optimizer.weight_decay=" + "9" * 400], "optimizer.weight_decay=999"),
    (["trainer.check_val_every_n_epoch=nan"], "trainer.check_val_every_n_epoch=nan is invalid"),
    (["+trainer.foo=1"], "trainer.foo=1 is invalid: not a key of Trainer"),
    (["~data"], "data.source=None is invalid: required: choose a data set"),
    (
        ["trainer.accelerator=tpux"],
        "trainer.accelerator='tpux' is invalid: must be one of auto, cpu",
    ),
    (["scheduler=step", "scheduler.gamma=0"], "scheduler.gamma=0 is invalid: must be a number > 0"),
    (["optimizer.betas=[0.9]"], "optimizer.betas=[0.9] is invalid: must be two numbers in [0, 1)"),
    (
        ["callbacks.model_checkpoint.filename=../../x"],
        "callbacks.model_checkpoint.filename='../../x'",
    ),
    (["logger.csv.name=a/b"], "logger.csv.name='a/b' is invalid: must be a name"),
]


@pytest.mark.parametrize(("overrides", "message"), HARMFUL + TRACEBACKS, ids=lambda v: str(v))
def test_once_harmful_or_fatal_values_are_one_line(train_cfg, overrides, message):
    cfg = train_cfg(*overrides)
    with pytest.raises(ConfigError) as err:
        train(cfg)
    assert str(err.value).startswith(message) and "\n" not in str(err.value)
    assert not Path(cfg.paths.output_dir).exists()  # nothing written, not even the folder


def test_what_torch_or_lightning_refuses_is_named_by_its_key(train_cfg):
    """torch checks an optimiser's arguments only when it is made, inside trainer.fit: the build
    makes one early. Lightning refuses a strategy when the Trainer is made."""
    cfg = train_cfg("optimizer.fused=true", "+optimizer.foreach=true")
    with pytest.raises(ConfigError, match=r"^optimizer.foreach=True is invalid: RuntimeError: "):
        train(cfg)
    cfg = train_cfg("+trainer.strategy=fancy", out="strategy")
    with pytest.raises(ConfigError, match=r"^trainer.strategy='fancy' is invalid: .*fancy"):
        train(cfg)
    typo = train_cfg("optimizer=sgd", "+optimizer.momentun=0.9", out="typo")
    with pytest.raises(ConfigError, match=r"not a key of SGD .*did you mean optimizer.momentum"):
        train(typo)


@pytest.mark.parametrize("override", ["stepwise.strategy=lower_first", "finetune.freeze=[0]"])
def test_layer_schedules_need_an_mlp(train_cfg, override):
    with pytest.raises(ConfigError, match="works on a network's hidden blocks"):
        train(train_cfg("model=rnn", override))


def test_lr_find_range_must_be_increasing(train_cfg):
    cfg = train_cfg("debug=lr_find", "callbacks.lr_find.max_lr=1e-7")
    with pytest.raises(ConfigError, match="must be below callbacks.lr_find.max_lr=1e-07"):
        train(cfg)


def test_fractions_must_leave_training_data(train_cfg):
    with pytest.raises(ConfigError, match="val_fraction \\+ test_fraction must stay below"):
        train(train_cfg("data.val_fraction=0.5", "data.test_fraction=0.45"))


@pytest.mark.parametrize("override", ["optimizer=adamm", "optimizer=sgd,adamm", "data=mnist"])
def test_unknown_group_choice(override):
    with pytest.raises(ConfigError, match="is invalid: choose one of "):
        check_group_overrides([override])


def test_known_choices_and_plain_keys_pass():
    check_group_overrides(
        [
            "optimizer=sgd,adam",
            "model.depth=3",
            "hydra/launcher=basic",
            "+experiment=example",
            "~callbacks.early_stopping",
        ]
    )


def test_missing_csv(train_cfg, tmp_path):
    with pytest.raises(ConfigError, match="data.source.path='.*nope.csv' is invalid: no such file"):
        train(train_cfg("data=csv", f"data.source.path={tmp_path / 'nope.csv'}"))


def test_csv_path_is_required(train_cfg):
    with pytest.raises(ConfigError, match="data.source.path='\\?\\?\\?' is invalid: required"):
        train(train_cfg("data=csv"))


def _write_csv(path, text):
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a,b,label\n1,2,0\n,4,1\n5,6,0\n", r"missing values \(NaN\) in column\(s\) a \(1\)"),
        ("a,b,label\n1,x,0\n3,y,1\n", r"feature column\(s\) \['b'\] are not numeric"),
        ("a,b,target\n1,2,0\n3,4,1\n", r"data.source.target='label' is invalid: columns are"),
    ],
)
def test_bad_csv(train_cfg, tmp_path, text, message):
    path = _write_csv(tmp_path / "t.csv", text)
    with pytest.raises(ConfigError, match=message):
        train(train_cfg("data=csv", f"data.source.path={path}"))


def test_npz_with_wrong_keys(train_cfg, tmp_path):
    np.savez(tmp_path / "d.npz", features=np.zeros((10, 2)), y=np.zeros(10))
    with pytest.raises(ConfigError, match="data.source.features_key='x' is invalid: arrays in"):
        train(train_cfg("data=npz", f"data.source.path={tmp_path / 'd.npz'}"))


@pytest.mark.slow
def test_cli_errors_are_one_line_with_exit_2(tmp_path):
    """As a user sees them: stderr is one line, exit status 2, no traceback, and no run folder
    left behind (Hydra makes it before the task starts; an unused one is removed)."""
    cases = [["model.depth=0"], ["optimizer=adamm"], ["data=csv", "data.source.path=no.csv"]]
    if not torch.cuda.is_available():
        cases.append(["trainer=gpu"])
    for args in cases:
        for where in ([f"hydra.run.dir={tmp_path}/r"], []):  # and outputs/<date>/<time>
            result = run_cli(str(ROOT / "train.py"), "logger=csv", *where, *args, cwd=tmp_path)
            assert result.returncode == 2, result.stderr
            lines = [line for line in result.stderr.splitlines() if line.strip()]
            assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
            assert "Traceback" not in result.stderr + result.stdout
            assert not result.stdout
            assert not list(tmp_path.iterdir()), list(tmp_path.rglob("*"))


def test_an_unused_run_folder_only_is_removed(tmp_path, monkeypatch):
    """Hydra's files alone go; a folder with anything else in it stays whole."""
    from types import SimpleNamespace

    from deeptune import cli

    hydra_cfg = SimpleNamespace(output_subdir=".hydra")
    monkeypatch.setattr(cli.HydraConfig, "get", staticmethod(lambda: hydra_cfg))
    monkeypatch.chdir(tmp_path)
    for extra in (None, "metrics.json", "notes/readme.txt"):
        run = tmp_path / "outputs" / "day" / "time"
        (run / ".hydra").mkdir(parents=True, exist_ok=True)
        (run / ".hydra" / "config.yaml").write_text("seed: 1")
        if extra:
            (run / extra).parent.mkdir(parents=True, exist_ok=True)
            (run / extra).write_text("{}")
        cli.remove_unused(run)
        assert run.exists() is bool(extra)
        assert (tmp_path / "outputs").exists() is bool(extra)  # emptied parents go too
    assert (tmp_path / "outputs" / "day" / "time" / "notes" / "readme.txt").is_file()


def test_a_gpu_asked_for_where_there_is_none(train_cfg, monkeypatch):
    """Decided as soon as torch is imported, before the data, the model or the trainer."""
    from deeptune.config import validate_against_machine

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    monkeypatch.setattr(torch.version, "cuda", "12.8")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    with pytest.raises(ConfigError, match=r"^trainer.accelerator='gpu' is invalid: no CUDA GPU "):
        validate_against_machine(train_cfg("trainer=gpu"))
    validate_against_machine(train_cfg("trainer=cpu"))
    validate_against_machine(train_cfg())  # auto: the CPU when there is no GPU
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises(ConfigError, match=r"^trainer.devices=2 is invalid: this machine has 1 "):
        validate_against_machine(train_cfg("trainer=gpu", "trainer.devices=2"))


@pytest.mark.slow
def test_eval_bad_checkpoints(tmp_path):
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    corrupt = run / "checkpoints" / "best.ckpt"
    corrupt.write_bytes(b"not a checkpoint")
    cases = [
        ([], "ckpt_path=None is invalid: required"),
        ([f"ckpt_path={tmp_path}/missing.ckpt"], "missing.ckpt' is invalid: no such file"),
        ([f"ckpt_path={corrupt}"], "is invalid: cannot read the checkpoint"),
    ]
    for args, message in cases:
        result = run_cli(str(ROOT / "eval.py"), f"hydra.run.dir={tmp_path}/e", *args, cwd=tmp_path)
        assert result.returncode == 2
        assert result.stderr.strip().splitlines() == [f"error: {result.stderr.strip()[7:]}"]
        assert message in result.stderr
