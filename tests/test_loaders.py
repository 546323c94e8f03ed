"""The DataLoader path: image folders, text tables and memory-mapped arrays (deeptune.data.*)."""

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from deeptune.data import text as text_module
from deeptune.data.arrays import ArrayDataModule, Rows, chunked_scaler
from deeptune.data.folders import ImageFolderDataModule, ImageSet, channel_stats
from deeptune.data.loaders import FITTED, SeededSampler
from deeptune.data.schema import ImagesNode, NpyNode, TextNode
from deeptune.data.text import TextDataModule
from deeptune.errors import ConfigError
from deeptune.schema import check_model

CLASSES = ("checks", "cols", "rows")


def pattern(kind: str, rng, size: int = 12) -> Image.Image:
    """A 12x12 RGB image of its class's pattern, tinted and noisy."""
    grid = np.indices((size, size))
    on = {"rows": grid[0] % 4 < 2, "cols": grid[1] % 4 < 2, "checks": (grid.sum(0) % 2) == 0}
    base = np.where(on[kind], 200, 40)[..., None] * np.array([1.0, 0.8, 0.6])
    noisy = base + rng.normal(0, 10, base.shape)
    return Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8))


def write_images(root, per_class=10, seed=0, splits=None):
    rng = np.random.default_rng(seed)
    for tree in splits or [""]:
        for kind in CLASSES:
            folder = root / tree / kind
            folder.mkdir(parents=True)
            for i in range(per_class):
                pattern(kind, rng).save(folder / f"{i}.png")
    return root


POS = ["good", "great", "fine", "nice", "lovely", "superb"]
NEG = ["bad", "awful", "poor", "nasty", "dreadful", "grim"]


def write_text(path, n=80, seed=0):
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        label = "pos" if i % 2 else "neg"
        words = rng.choice(POS if label == "pos" else NEG, size=rng.integers(3, 9))
        rows.append({"review": " ".join(words), "sentiment": label})
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def write_arrays(tmp_path, n=200, features=5, seed=0):
    rng = np.random.default_rng(seed)
    x = (rng.normal(size=(n, features)) * [1, 2, 3, 4, 5] + [10, 0, -5, 1, 2]).astype(np.float32)
    y = (x[:, 0] - 10 + x[:, 1] > 0).astype(np.int64)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", y)
    return x, y


def images(root, **kw):
    kw = {"path": str(root), "image_size": 12, "batch_size": 8, **kw}
    dm = ImageFolderDataModule(**kw)
    dm.setup("fit")
    return dm


def batches(loader, epoch=0):
    loader.sampler.set_epoch(epoch)
    return list(loader)


def same(a, b) -> bool:
    if isinstance(a, dict):
        return all(torch.equal(a[k], b[k]) for k in a)
    return torch.equal(a, b)


# -- the sampler ----------------------------------------------------------------------------


def test_sampler_order_is_a_function_of_seed_and_epoch_and_ranks_get_equal_shards():
    one, two = SeededSampler(50, True, seed=3), SeededSampler(50, True, seed=3)
    assert list(one) == list(two) and sorted(one) == list(range(50))
    one.set_epoch(1)
    assert list(one) != list(two)  # another epoch, another order
    assert list(SeededSampler(50, True, seed=4)) != list(two)
    # seed 1 at epoch 0 is not seed 0 at epoch 1 (restarts use seed, seed + 1, ...)
    later = SeededSampler(50, True, seed=0)
    later.set_epoch(1)
    assert list(SeededSampler(50, True, seed=1)) != list(later)
    shards = [
        list(SeededSampler(51, True, 3, rank=r, world_size=2, drop_last=True)) for r in (0, 1)
    ]
    assert len(shards[0]) == len(shards[1]) == 25 and not set(shards[0]) & set(shards[1])
    # A DistributedSampler already: Lightning keeps it under DDP instead of wrapping it
    assert isinstance(one, torch.utils.data.DistributedSampler)


# -- images ---------------------------------------------------------------------------------


def test_images_split_stratified_standardised_on_train_only(tmp_path):
    dm = images(write_images(tmp_path / "imgs", per_class=10))
    assert dm.classes == list(CLASSES) and dm.input_shape == (3, 12, 12) and dm.in_memory
    assert dm.task == "classification" and dm.num_outputs == 3
    sizes = {name: np.bincount(dm.y[i].numpy(), minlength=3) for name, i in dm.indices.items()}
    assert all(counts.max() - counts.min() <= 1 for counts in sizes.values())  # stratified
    everything = np.concatenate(list(dm.indices.values()))
    assert len(everything) == len(set(everything)) == 30  # no sample in two splits
    own = channel_stats(dm._images, dm.indices["train"], (12, 12), 3)
    assert dm.scaler == own  # the training images' statistics, nothing else's
    x, y = next(iter(dm.train_dataloader()))
    assert x.shape == (8, 3, 12, 12) and x.dtype == torch.float32 and y.dtype == torch.long


def test_images_lazy_reading_gives_the_same_batches_in_workers(tmp_path):
    root = write_images(tmp_path / "imgs", per_class=6)
    aug = {"crop": 2, "flip": True}  # drawn from (seed, epoch, index): the same in a worker
    kept = images(root, augment=aug)
    lazy = images(root, in_memory_mb=0, num_workers=2, augment=aug)
    assert kept.in_memory and not lazy.in_memory and kept.scaler == lazy.scaler
    for a, b in zip(
        batches(kept.train_dataloader()), batches(lazy.train_dataloader()), strict=True
    ):
        assert torch.allclose(a[0], b[0], atol=1e-6) and torch.equal(a[1], b[1])


def test_images_given_trees_and_grayscale(tmp_path):
    root = write_images(tmp_path / "imgs", per_class=8, splits=["train", "test"])
    dm = images(root, channels=1, image_size=[8, 10])
    assert dm.input_shape == (1, 8, 10)
    assert set(dm.indices["test"]) == set(range(24, 48))  # test/ as given, val cut from train/
    assert next(iter(dm.val_dataloader()))[0].shape[1:] == (1, 8, 10)


def test_augmentation_seeded_and_on_training_batches_only(tmp_path):
    root = write_images(tmp_path / "imgs", per_class=6)
    plain = images(root, shuffle=False)
    aug = {"crop": 2, "flip": True}
    one, two = images(root, shuffle=False, augment=aug), images(root, shuffle=False, augment=aug)
    first = batches(one.train_dataloader())
    assert all(
        same(a[0], b[0]) for a, b in zip(first, batches(two.train_dataloader()), strict=True)
    )
    assert not all(
        same(a[0], b[0]) for a, b in zip(first, batches(plain.train_dataloader()), strict=True)
    )
    assert not same(first[0][0], batches(one.train_dataloader(), epoch=1)[0][0])  # fresh draws
    for name in ("val", "test"):
        ours = next(iter(one._loader(name)))[0]
        assert same(ours, next(iter(plain._loader(name)))[0])  # evaluation sees plain images


def test_images_state_predicts_new_files(tmp_path):
    root = write_images(tmp_path / "imgs", per_class=8)
    dm = images(root)
    fresh = ImageFolderDataModule(path="/nowhere", image_size=32)  # no data needed
    fresh.load_state_dict(dm.state_dict())
    files = sorted((root / "rows").glob("*.png"))
    x = fresh.predict_inputs([str(f) for f in files])
    assert x.shape == (8, 3, 12, 12)
    assert torch.allclose(x, fresh.predict_inputs(root / "rows"))  # a folder: the same files
    assert torch.allclose(x[:1], fresh.predict_inputs([Image.open(files[0])]))
    # exactly what training fed the network for the same file
    every = ImageSet(dm._images, dm.y, (12, 12), 3, dm.scaler, {}, 0)
    assert torch.allclose(x[0], every[dm.files.index(files[0])][0])


def test_images_bad_folders_are_one_line(tmp_path):
    with pytest.raises(ConfigError, match="data.path"):
        images(tmp_path / "missing")
    (tmp_path / "one" / "only").mkdir(parents=True)
    with pytest.raises(ConfigError, match="one folder per class"):
        images(tmp_path / "one")


# -- text -----------------------------------------------------------------------------------


def texts(path, **kw):
    kw = {"path": str(path), "text_column": "review", "label_column": "sentiment", **kw}
    dm = TextDataModule(batch_size=16, max_length=8, vocab_size=60, **kw)
    dm.setup("fit")
    return dm


def test_text_batches_masks_and_a_tokenizer_fitted_on_train_only(tmp_path, monkeypatch):
    seen = []
    train_tokenizer = text_module.train_tokenizer
    monkeypatch.setattr(
        text_module,
        "train_tokenizer",
        lambda t, *a: seen.extend(t) or train_tokenizer(t, *a),
    )
    dm = texts(write_text(tmp_path / "t.csv"))
    assert sorted(seen) == sorted(dm.texts.iloc[dm.indices["train"]].tolist())
    assert dm.input_shape == (8,) and dm.classes == ["neg", "pos"]
    assert 2 < dm.vocab_size <= 60
    x, y = next(iter(dm.train_dataloader()))
    assert set(x) == {"input_ids", "attention_mask"}
    assert x["input_ids"].shape == x["attention_mask"].shape == (16, 8)
    assert x["input_ids"].dtype == torch.long and x["attention_mask"].dtype == torch.bool
    assert torch.equal(x["attention_mask"], x["input_ids"] != 0)  # [PAD] is id 0
    assert x["attention_mask"][:, 0].all() and not x["attention_mask"].all()
    assert y.dtype == torch.long


def test_text_tokenizer_repeatable_and_restored_from_state(tmp_path):
    path = write_text(tmp_path / "t.csv")
    one = texts(path)
    FITTED.clear()  # trained again, not taken from this process's last fit
    two = texts(path, tokenizer="bpe")
    assert one.tokenizer.to_str() == two.tokenizer.to_str()
    assert all(
        same(a[0], b[0])
        for a, b in zip(one.train_dataloader(), two.train_dataloader(), strict=True)
    )
    fresh = TextDataModule(
        path="/nowhere", text_column="review"
    )  # a checkpoint rebuilds it without the table
    fresh.load_state_dict(one.state_dict())
    new = ["good great", "awful grim zebra"]
    assert same(fresh.predict_inputs(new), one.predict_inputs(new))
    assert fresh.predict_inputs(new)["input_ids"].shape == (2, 8)
    first = int(one.indices["train"][0])  # the table's rows, encoded as in training
    from_file = fresh.predict_inputs(str(path))["input_ids"][first]
    assert torch.equal(from_file, one.datasets["train"].x["input_ids"][0])


def test_text_parquet_wordlevel_and_regression(tmp_path):
    pytest.importorskip("pyarrow")
    frame = pd.read_csv(write_text(tmp_path / "t.csv"))
    frame.assign(score=np.arange(len(frame), dtype=float)).to_parquet(tmp_path / "t.parquet")
    dm = texts(tmp_path / "t.parquet", tokenizer="wordlevel")
    dm2 = texts(tmp_path / "t.parquet", task="regression", label_column="score")
    assert dm.vocab_size == 2 + len(POS + NEG)  # one id a word, and [PAD], [UNK]
    assert dm2.num_outputs == 1 and next(iter(dm2.train_dataloader()))[1].dtype == torch.float32


def test_text_bad_columns_are_one_line(tmp_path):
    with pytest.raises(ConfigError, match="data.text_column.*no such column"):
        texts(write_text(tmp_path / "t.csv"), text_column="body")


# -- npy ------------------------------------------------------------------------------------


def arrays(tmp_path, **kw):
    kw = {"path": str(tmp_path / "x.npy"), "labels": str(tmp_path / "y.npy"), **kw}
    dm = ArrayDataModule(batch_size=32, **kw)
    dm.setup("fit")
    return dm


def test_npy_rows_by_index_scaled_with_chunked_train_statistics(tmp_path, monkeypatch):
    from sklearn.preprocessing import StandardScaler

    x, y = write_arrays(tmp_path)
    monkeypatch.setattr("deeptune.data.arrays.CHUNK_BYTES", 7 * 20)  # 7 rows a chunk
    dm = arrays(tmp_path)
    train = dm.indices["train"]
    exact = StandardScaler().fit(x[train].astype(np.float64))
    assert np.allclose(dm.scaler["mean"], exact.mean_) and np.allclose(
        dm.scaler["std"], exact.scale_
    )
    assert dm.input_shape == (5,) and dm.classes == ["0", "1"]
    xb, yb = next(iter(dm.train_dataloader()))
    assert xb.shape == (32, 5) and xb.dtype == torch.float32
    rows = np.asarray(list(dm.train_dataloader().sampler))[:32]
    expected = (x[train][rows] - exact.mean_) / exact.scale_
    assert np.allclose(xb.numpy(), expected, atol=1e-5) and np.array_equal(yb, y[train][rows])


def test_a_fit_is_reused_for_the_same_files_and_training_split(tmp_path, monkeypatch):
    write_arrays(tmp_path)
    calls = []
    monkeypatch.setattr("deeptune.data.arrays.chunked_scaler", lambda x, t: calls.append(1) or {})
    arrays(tmp_path), arrays(tmp_path)  # the contract's look, then the fit: one pass
    assert len(calls) == 1
    arrays(tmp_path, split_seed=1)  # another training split: fitted again
    np.save(tmp_path / "x.npy", np.load(tmp_path / "x.npy")[::-1].copy())  # rewritten
    arrays(tmp_path)
    assert len(calls) == 3


def test_npy_workers_read_the_same_batches(tmp_path):
    write_arrays(tmp_path)
    one, two = arrays(tmp_path), arrays(tmp_path, num_workers=2, persistent_workers=True)
    for a, b in zip(
        batches(one.train_dataloader(), 3), batches(two.train_dataloader(), 3), strict=True
    ):
        assert same(a[0], b[0]) and same(a[1], b[1])


def test_npy_state_predicts_and_checks_shapes(tmp_path):
    x, _ = write_arrays(tmp_path)
    dm = arrays(tmp_path)
    fresh = ArrayDataModule(path="/nowhere.npy", labels="/nowhere.npy")
    fresh.load_state_dict(dm.state_dict())
    assert same(fresh.predict_inputs(x[:4]), fresh.predict_inputs(str(tmp_path / "x.npy"))[:4])
    with pytest.raises(ConfigError, match=r"shape \(4, 3\)"):
        fresh.predict_inputs(x[:4, :3])
    np.save(tmp_path / "short.npy", np.zeros(5))
    with pytest.raises(ConfigError, match="data.labels.*5 labels for 200 rows"):
        arrays(tmp_path, labels=str(tmp_path / "short.npy"))


def test_an_npz_for_data_npy_is_one_line(tmp_path):
    from deeptune.data.arrays import open_array

    np.savez(tmp_path / "x.npz", x=np.zeros((4, 2)))
    with pytest.raises(ConfigError, match=r"data.path=.*x.npz.* an .npz archive: use data=npz"):
        open_array(tmp_path / "x.npz", "data.path")


@pytest.mark.parametrize("order", ["C", "F"])
def test_rows_are_read_by_index_without_a_mapping(tmp_path, order):
    x = np.asarray(np.random.default_rng(2).normal(size=(50, 3, 2)), order=order)
    np.save(tmp_path / "a.npy", x)
    rows = Rows(str(tmp_path / "a.npy"))
    wanted = np.array([0, 1, 2, 7, 9, 10, 49])  # runs of consecutive rows and single ones
    assert np.array_equal(rows[wanted], x[wanted]) and rows.sample_shape == (3, 2)
    assert (rows._file is None) == (order == "F")  # Fortran order: read through the map


def test_chunked_scaler_matches_one_pass():
    x = np.random.default_rng(1).normal(3, 2, size=(101, 4, 3))
    rows = np.arange(0, 101, 2)
    want = x[rows].reshape(-1, 3)
    got = chunked_scaler(x, rows)
    assert np.allclose(got["mean"], want.mean(0)) and np.allclose(got["std"], want.std(0))


# -- folds, for every module ------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["images", "text", "npy"])
def test_folds_cut_train_and_val_and_keep_test(tmp_path, kind):
    if kind == "images":
        root = write_images(tmp_path / "imgs", per_class=10)
        build = lambda **kw: images(root, **kw)  # noqa: E731
    elif kind == "text":
        path = write_text(tmp_path / "t.csv", n=60)
        build = lambda **kw: texts(path, **kw)  # noqa: E731
    else:
        write_arrays(tmp_path)
        build = lambda **kw: arrays(tmp_path, **kw)  # noqa: E731
    plain = build()
    folds = [build(fold=(k, 3)) for k in range(3)]
    vals = [set(f.indices["val"]) for f in folds]
    pool = set(plain.indices["train"]) | set(plain.indices["val"])
    assert set().union(*vals) == pool and sum(map(len, vals)) == len(pool)  # disjoint cover
    for f in folds:
        assert np.array_equal(f.indices["test"], plain.indices["test"])
        assert not set(f.indices["train"]) & set(f.indices["val"])
        y = np.asarray(f.y)
        share = len(f.indices["val"]) / len(pool)  # stratified: each class's share of the pool
        expected = np.bincount(y[sorted(pool)]) * share
        assert np.abs(np.bincount(y[f.indices["val"]]) - expected).max() <= 1


# -- the schema -----------------------------------------------------------------------------


def test_schema_refuses_bad_values_in_one_line():
    base = {"_target_": "x"}
    with pytest.raises(ConfigError, match="data.channels"):
        check_model(ImagesNode, {**base, "path": "p", "channels": 2}, "data")
    with pytest.raises(ConfigError, match="data.augment.crops.*did you mean"):
        check_model(ImagesNode, {**base, "path": "p", "augment": {"crops": 2}}, "data")
    with pytest.raises(ConfigError, match="data.standardize.*must be false"):
        check_model(TextNode, {**base, "path": "p", "standardize": True}, "data")
    with pytest.raises(ConfigError, match="data.tokenizer"):
        check_model(TextNode, {**base, "path": "p", "tokenizer": "wordpiece"}, "data")
    with pytest.raises(ConfigError, match="data.labels"):
        check_model(NpyNode, {**base, "path": "p"}, "data")
    with pytest.raises(ConfigError, match="data.num_workers"):
        check_model(NpyNode, {**base, "path": "p", "labels": "q", "num_workers": -1}, "data")


# -- end to end: train.py's run modes and deeptune.load(ckpt).predict(raw) -------------------

KINDS = ["images", "text", "npy"]


def data_overrides(kind: str, tmp_path) -> list[str]:
    """The overrides that train `kind` on files written into tmp_path."""
    if kind == "images":
        root = write_images(tmp_path / "imgs", per_class=12)
        return [
            *("data=images", f"data.path={root}", "data.image_size=12"),
            *("model=cnn", "model.depth=2", "model.width=8", "optimizer.lr=0.01"),
        ]
    if kind == "text":
        path = write_text(tmp_path / "t.csv", n=80)
        return [
            *("data=text", f"data.path={path}", "data.max_length=8"),
            *("data.text_column=review", "data.label_column=sentiment"),
            *("model=transformer", "model.depth=1", "model.width=16", "model.heads=2"),
            "optimizer.lr=0.01",
        ]
    write_arrays(tmp_path)
    return ["data=npy", f"data.path={tmp_path / 'x.npy'}", f"data.labels={tmp_path / 'y.npy'}"]


def new_inputs(kind: str, tmp_path):
    """(raw inputs the model never saw, the labels they should get)."""
    rng = np.random.default_rng(99)
    if kind == "images":
        (folder := tmp_path / "new").mkdir()
        for name in CLASSES:
            pattern(name, rng).save(folder / f"{name}.png")
        return folder, list(CLASSES)  # a folder: its files in name order
    if kind == "text":
        return ["superb lovely nice", "dreadful poor grim"], ["pos", "neg"]
    x = (rng.normal(size=(60, 5)) * [1, 2, 3, 4, 5] + [10, 0, -5, 1, 2]).astype(np.float32)
    margin = x[:, 0] - 10 + x[:, 1]
    x = x[np.abs(margin) > 2]  # clear of the boundary
    return x, [str(int(v)) for v in x[:, 0] - 10 + x[:, 1] > 0]


@pytest.mark.parametrize("kind", KINDS)
def test_restarts_ensemble_and_predict_on_new_raw_inputs(train_cfg, tmp_path, kind):
    import json

    import deeptune
    from deeptune.train import train

    cfg = train_cfg(
        *data_overrides(kind, tmp_path),
        *("restarts=2", "ensemble=mean_prob", "trainer.max_epochs=10"),
    )
    train(cfg)
    run = tmp_path / "run"
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["restarts"]["n"] == 2 and metrics["ensemble"]["test"]["acc"] >= 0.8
    raw, labels = new_inputs(kind, tmp_path)
    model = deeptune.load(run / "restart_0" / "checkpoints" / "best.ckpt")
    assert list(model.predict(raw)) == labels
    ensemble = deeptune.load(run / "ensemble.yaml")
    assert list(ensemble.predict(raw)) == labels
    assert ensemble.predict_proba(raw).shape == (len(labels), len(model.classes))
    # predict.py on a folder, a table of texts, a .npy: what deeptune.load predicted
    import pandas as pd
    from helpers.runs import compose_cfg

    from deeptune.predict import predict

    source = raw
    if kind == "text":
        source = tmp_path / "new.csv"
        pd.DataFrame({"review": raw}).to_csv(source, index=False)
    elif kind == "npy":
        np.save(source := tmp_path / "new.npy", raw)
    ckpt = run / "restart_0" / "checkpoints" / "best.ckpt"
    out = tmp_path / "preds.csv"
    args = [f"ckpt_path={ckpt}", f"input={source}", f"output={out}", "chunk_size=2"]
    assert predict(compose_cfg("predict", args, tmp_path / "predict")) == len(labels)
    assert list(pd.read_csv(out)["prediction"].astype(str)) == labels


def test_token_ids_need_a_network_that_embeds_them(train_cfg, tmp_path):
    from deeptune.train import train

    text = [o for o in data_overrides("text", tmp_path) if not o.startswith("model")]
    with pytest.raises(
        ConfigError, match=r"model='MLP' is invalid: .*token ids.*model=transformer"
    ):
        train(train_cfg(*text, "model=mlp"))


def test_kfold_and_repeatable_runs(train_cfg, tmp_path):
    import json

    from deeptune.train import train

    data = data_overrides("npy", tmp_path)
    train(train_cfg(*data, "cv.folds=3", "trainer.max_epochs=2", out="cv"))
    folds = json.loads((tmp_path / "cv" / "metrics.json").read_text())["cv"]
    assert folds["folds"] == 3 and len(folds["val"]["acc"]["runs"]) == 3
    one = train(train_cfg(*data, "data.shuffle=true", "trainer.max_epochs=2", out="a"))
    two = train(train_cfg(*data, "data.shuffle=true", "trainer.max_epochs=2", out="b"))
    assert one == two  # the same seed, the same batches, the same model


def test_a_resumed_run_sees_the_same_batches_and_augmentation(train_cfg, tmp_path):
    """3 epochs straight, or 1 then 2 more from its last.ckpt: the same weights to the bit
    (shuffled, cropped and flipped). In one process deeptune's checkpoint restores torch's RNG
    too; that workers draw the same is test_images_lazy_reading_gives_the_same_batches_..."""
    from deeptune.train import train

    data = [*data_overrides("images", tmp_path), "data.augment.crop=2", "data.augment.flip=true"]
    data += ["data.batch_size=8", "keep_last=true"]  # the final weights are compared
    train(train_cfg(*data, "trainer.max_epochs=3", out="whole"))
    train(train_cfg(*data, "trainer.max_epochs=1", out="first"))
    last = tmp_path / "first" / "checkpoints" / "last.ckpt"
    train(train_cfg(*data, "trainer.max_epochs=3", f"ckpt_path={last}", out="resumed"))
    weights = [
        torch.load(tmp_path / run / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
        for run in ("whole", "resumed")
    ]
    assert weights[0].keys() == weights[1].keys()
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])


EXPERIMENT = """# @package _global_
defaults:
  - override /data: {data}
  - override /model: {model}
{keys}
"""


@pytest.mark.slow
def test_one_optuna_sweep_over_all_three(tmp_path):
    """2 trials each of data=images, text and npy, in one `train.py -m` (a grid over their
    experiments and two learning rates)."""
    import json
    import os

    import yaml
    from helpers.runs import ROOT, run_cli

    conf = tmp_path / "conf"
    for kind in KINDS:
        overrides = [o for o in data_overrides(kind, tmp_path) if not o.startswith("hydra.")]
        picks = dict(o.split("=", 1) for o in overrides if "." not in o.split("=")[0])
        keys = [o.split("=", 1) for o in overrides if "." in o.split("=")[0]]
        nested: dict = {}
        for key, value in keys:
            group, name = key.split(".", 1)
            nested.setdefault(group, {})[name] = yaml.safe_load(value)
        text = EXPERIMENT.format(
            data=picks["data"], model=picks.get("model", "mlp"), keys=yaml.safe_dump(nested)
        )
        (conf / "experiment").mkdir(parents=True, exist_ok=True)
        (conf / "experiment" / f"loader_{kind}.yaml").write_text(text)
    env = {"PYTHONPATH": os.pathsep.join([str(ROOT / "tests"), os.environ.get("PYTHONPATH", "")])}
    ran = run_cli(
        str(ROOT / "train.py"),
        *("-m", "--config-dir", str(conf), "hydra/sweeper=optuna", "hydra.sweeper.sampler=grid"),
        "experiment=choice(loader_images, loader_text, loader_npy)",
        "optimizer.lr=choice(0.01, 0.03)",
        *("logger=csv", "callbacks=none", "threads=1", "trainer.max_epochs=2"),
        f"hydra.sweep.dir={tmp_path / 'sweep'}",
        cwd=tmp_path,
        env=env,
        timeout=600,
    )
    assert ran.returncode == 0, ran.stderr[-3000:]
    results = yaml.safe_load((tmp_path / "sweep" / "optimization_results.yaml").read_text())
    assert results["trials"]["complete"] == 6
    picked = []
    for job in range(6):
        saved = yaml.safe_load(
            (tmp_path / "sweep" / str(job) / ".hydra" / "config.yaml").read_text()
        )
        metrics = json.loads((tmp_path / "sweep" / str(job) / "metrics.json").read_text())
        assert metrics["status"] == "completed"
        picked.append(saved["data"]["_target_"].rpartition(".")[2])
    assert sorted(picked) == sorted(
        ["ImageFolderDataModule", "TextDataModule", "ArrayDataModule"] * 2
    )


@pytest.mark.slow
def test_ddp_on_two_cpu_processes(tmp_path):
    """Two ranks read their own shards of data=npy through SeededSampler (a DistributedSampler,
    so Lightning keeps it), the same number of steps each."""
    import json

    from helpers.runs import ROOT, run_cli

    ran = run_cli(
        str(ROOT / "train.py"),
        *data_overrides("npy", tmp_path),
        *("logger=csv", "callbacks=none", "threads=1", "trainer.max_epochs=2"),
        *("trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2"),
        f"hydra.run.dir={tmp_path / 'ddp'}",
        cwd=tmp_path,
    )
    assert ran.returncode == 0, ran.stderr[-3000:]
    assert json.loads((tmp_path / "ddp" / "metrics.json").read_text())["status"] == "completed"
    log = (tmp_path / "ddp" / "train.log").read_text()
    assert "rank 1 of 2" in log and "rank 0 of 2" in log
