"""Bad input: one line that names the key, the value and what is allowed; nothing half-written."""

from pathlib import Path

import numpy as np
import pytest
from conftest import ROOT, run_cli

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


@pytest.mark.parametrize("override", ["stepwise.strategy=lower_first", "finetune.freeze=[0]"])
def test_layer_schedules_need_an_mlp(train_cfg, override):
    with pytest.raises(ConfigError, match="works on model=mlp's hidden layers"):
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
    """As a user sees them: stderr is one line, exit status 2, no traceback, no metrics.json."""
    for args in (["model.depth=0"], ["optimizer=adamm"], ["data=csv", "data.source.path=no.csv"]):
        result = run_cli(
            str(ROOT / "train.py"), "logger=csv", f"hydra.run.dir={tmp_path}/r", *args, cwd=tmp_path
        )
        assert result.returncode == 2, result.stderr
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
        assert "Traceback" not in result.stderr + result.stdout
        assert not list(tmp_path.rglob("metrics.json"))


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
