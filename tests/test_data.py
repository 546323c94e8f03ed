"""The data path: batches sliced from tensors, DDP shards, the stratified split and its folds;
the files a user brings (CSV, .npz) and the one-line messages for those that cannot work."""

from pathlib import Path

import numpy as np
import pytest
import torch
from helpers.runs import run_cli

from deeptune import builders
from deeptune.config import validate, validate_against_data
from deeptune.data.datamodule import TensorBatches, split
from deeptune.data.sources import Table, digits, spirals
from deeptune.errors import ConfigError
from deeptune.train import train


def test_batches_are_slices_with_a_seeded_order():
    x, y = torch.arange(10.0).unsqueeze(1), torch.arange(10)
    plain = TensorBatches(x, y, batch_size=4)
    assert len(plain) == 3 and [len(b[1]) for b in plain] == [4, 4, 2]

    def order(batches, epoch):
        batches.epoch = lambda: epoch  # the trainer's counter in a real run
        return torch.cat([yb for _, yb in batches])

    a, b = (TensorBatches(x, y, 4, shuffle=True, seed=3) for _ in range(2))
    assert torch.equal(order(a, 0), order(b, 0))  # same seed, same order
    assert not torch.equal(order(a, 0), order(a, 1))  # a new permutation every epoch
    assert torch.equal(order(a, 5), order(b, 5))  # epoch 5 does not depend on epochs 0-4
    assert sorted(order(a, 2).tolist()) == list(range(10))


def test_ddp_shards_are_disjoint_and_equal():
    x, y = torch.arange(11.0).unsqueeze(1), torch.arange(11)
    shards = [
        torch.cat(
            [
                yb
                for _, yb in TensorBatches(
                    x, y, 2, shuffle=True, seed=1, rank=r, world_size=2, equal_shards=True
                )
            ]
        )
        for r in range(2)
    ]
    assert len(shards[0]) == len(shards[1]) == 5
    assert not set(shards[0].tolist()) & set(shards[1].tolist())


def test_split_is_stratified_and_standardised_on_train_only():
    table = digits()
    parts = split(table, 0.15, 0.15, seed=0, standardize=True)
    assert sum(len(y) for _, y in parts.values()) == len(table.y)
    x_train = parts["train"][0]
    assert np.abs(x_train.mean(0)).max() < 1e-5  # fitted here ...
    assert np.abs(parts["test"][0].mean(0)).max() > 1e-3  # ... not here
    for _, y in parts.values():
        assert np.bincount(y).min() / np.bincount(y).max() > 0.8  # classes balanced in each
    again = split(table, 0.15, 0.15, seed=0, standardize=True)
    assert np.array_equal(again["test"][1], parts["test"][1])


def test_labels_are_encoded():
    table = Table.from_labels(np.zeros((3, 2)), np.array(["b", "a", "b"]))
    assert table.classes == ["a", "b"] and table.y.tolist() == [1, 0, 1]
    assert spirals(n_samples=90, n_classes=3).x.shape == (90, 2)


def test_k_folds_partition_train_and_val_and_keep_test():
    table = digits()
    parts = [split(table, 0.15, 0.15, 0, False, fold=(k, 4)) for k in range(4)]
    test_sets = [p["test"][0].tobytes() for p in parts]
    assert len(set(test_sets)) == 1  # the test split never moves
    vals = np.concatenate([p["val"][1] for p in parts])
    n_rest = len(table.y) - len(parts[0]["test"][1])
    assert len(vals) == n_rest  # every non-test sample validates exactly once
    for p in parts:
        assert len(p["train"][1]) + len(p["val"][1]) == n_rest


def _rows(n, target):
    """CSV text: a header and n rows of two random features and target(i)."""
    rng = np.random.default_rng(0)
    return "a,b,y\n" + "".join(f"{rng.normal()},{rng.normal()},{target(i)}\n" for i in range(n))


def _source(train_cfg, *overrides):
    cfg = train_cfg(*overrides)
    validate(cfg)
    return cfg, builders.source(cfg)


BAD_CSV = {
    "empty": ("", [], r"path='.*t.csv' is invalid: the file is empty: a CSV needs a header row"),
    "header only": ("a,b,y\n", [], r"column names \['a', 'b', 'y'\] but no rows: add data rows"),
    "no such target": (_rows(30, lambda i: i % 2), ["data.source.target=label"], "target='label'"),
    "one class": (
        _rows(30, lambda i: "cat"),
        [],
        r"target='y' is invalid: the target has a single class \('cat'\) in all 30 rows: "
        "a classifier needs at least two",
    ),
    "fractions": (
        _rows(200, lambda i: i / 7),
        [],
        r"task='classification' is invalid: target 'y' looks continuous \(non-integer numbers, "
        r"200 distinct values in 200 rows\) and CSV targets are read as classes: "
        "set data.source.task=regression",
    ),
    "many integers": (_rows(100, lambda i: 3 * i), [], r"continuous \(100 distinct values in 100"),
    "text to regress": (
        _rows(30, lambda i: "ab"[i % 2]),
        ["data.source.task=regression"],
        "target='y' is invalid: holds object values: a regression needs numbers",
    ),
    "bad task": (_rows(30, lambda i: i % 2), ["data.source.task=ranking"], "must be one of class"),
}


@pytest.mark.parametrize(("text", "overrides", "message"), BAD_CSV.values(), ids=BAD_CSV)
def test_bad_csv_is_one_config_error(train_cfg, tmp_path, text, overrides, message):
    (tmp_path / "t.csv").write_text(text)
    path = tmp_path / "t.csv"
    cfg = train_cfg("data=csv", f"data.source.path={path}", "data.source.target=y", *overrides)
    with pytest.raises(ConfigError, match=message) as err:
        train(cfg)
    assert "\n" not in str(err.value)
    assert not (Path(cfg.paths.output_dir) / "metrics.json").exists()


def test_csv_targets_are_classes_unless_task_is_regression(train_cfg, tmp_path):
    path = tmp_path / "t.csv"
    path.write_text(_rows(60, lambda i: float(i % 3)))  # 0.0, 1.0, 2.0: whole numbers, labels
    _, table = _source(train_cfg, "data=csv", f"data.source.path={path}", "data.source.target=y")
    assert table.task == "classification" and table.classes == ["0.0", "1.0", "2.0"]

    path.write_text(_rows(60, lambda i: i / 7))
    cfg, table = _source(
        train_cfg,
        "data=csv",
        f"data.source.path={path}",
        "data.source.target=y",
        "data.source.task=regression",
    )
    assert table.task == "regression" and table.y.dtype == np.float32 and table.classes == []
    # The default objective is a classifier's: the message gives both keys to set.
    with pytest.raises(ConfigError, match=r"\(e.g. optimized_metric=val/mse optimized_mode=min\)"):
        validate_against_data(cfg, table)


def _npy_named_npz(path):
    np.save(path.with_suffix(".npy"), np.zeros((10, 2)))
    path.with_suffix(".npy").rename(path)


BAD_NPZ = {
    "text": (
        lambda p: p.write_text("x,y\n1,2\n"),
        r"path='.*d.npz' is invalid: the file is not an .npz archive: save the arrays together "
        r"with numpy.savez\(path, x=features, y=targets\)",
    ),
    "npy": (_npy_named_npz, r"the file is a single .npy array \(numpy.save\), not an .npz"),
    "no y": (lambda p: np.savez(p, x=np.zeros((10, 2))), r"target_key='y' is invalid: arrays in"),
    "objects": (
        lambda p: np.savez(p, x=np.zeros((10, 2)), y=np.array([1, "a"] * 5, dtype=object)),
        r"array 'y' holds Python objects \(dtype=object\), which are not loaded",
    ),
    "one class": (
        lambda p: np.savez(p, x=np.zeros((10, 2)), y=np.ones(10, dtype=int)),
        r"target_key='y' is invalid: the target has a single class \('1'\)",
    ),
}


@pytest.mark.parametrize(("write", "message"), BAD_NPZ.values(), ids=BAD_NPZ)
def test_bad_npz_is_one_config_error(train_cfg, tmp_path, write, message):
    write(tmp_path / "d.npz")
    with pytest.raises(ConfigError, match=message) as err:
        _source(train_cfg, "data=npz", f"data.source.path={tmp_path / 'd.npz'}")
    assert "\n" not in str(err.value) and "pickle" not in str(err.value)  # never that advice


def test_npz_regression(train_cfg, tmp_path):
    np.savez(tmp_path / "d.npz", x=np.zeros((20, 2)), y=np.linspace(0, 1, 20))
    _, table = _source(
        train_cfg,
        "data=npz",
        f"data.source.path={tmp_path / 'd.npz'}",
        "data.source.task=regression",
    )
    assert table.task == "regression" and table.y.shape == (20,)


def test_scikit_learn_loads_without_pandas_and_still_takes_dataframes(tmp_path):
    # The digits load imports scikit-learn, whose utils.fixes would import pandas (~0.2 s) for
    # nothing; a fresh process shows it stays out, and that pandas and DataFrames work after.
    code = (
        "import sys\n"
        "from deeptune.data.sources import digits\n"
        "assert len(digits().y) == 1797\n"
        "assert 'sklearn.utils.fixes' in sys.modules\n"
        "assert 'pandas' not in sys.modules, 'pandas imported'\n"
        "import pandas as pd\n"
        "from sklearn.model_selection import train_test_split\n"
        "from sklearn.preprocessing import StandardScaler\n"
        "df = pd.DataFrame({'a': range(10), 'b': range(10)})\n"
        "train, _ = train_test_split(df, test_size=0.3, random_state=0)\n"
        "assert isinstance(train, pd.DataFrame) and len(train) == 7\n"
        "out = StandardScaler().set_output(transform='pandas').fit_transform(df)\n"
        "assert list(out.columns) == ['a', 'b']\n"
        "print('ok')\n"
    )
    result = run_cli("-c", code, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "ok"


def test_digits_are_read_once_per_process_and_each_table_is_its_own():
    from deeptune.data import sources

    a, b = digits(), digits()
    assert sources._digits.cache_info().hits >= 1  # the CSV was not read again
    assert np.array_equal(a.x, b.x) and a.x is not b.x
    a.x[0, 0], a.y[0] = 99.0, 9  # a run that changed its table would not change the next one's
    fresh = digits()
    assert fresh.x[0, 0] != 99.0 and np.array_equal(fresh.y, b.y)
