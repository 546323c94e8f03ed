"""`python predict.py ckpt_path=<best.ckpt | ensemble.yaml> input=new.csv output=preds.csv`.

A model of an image folder, a text table or a .npy (data=images, text, npy, or your own data
module) predicts a folder of images, a table of texts or a .npy's rows (`input=new_images/`).

The checkpoint alone says how to read the rows (deeptune.run.portable): the feature columns by
name, the training scaler, the class labels. A CSV is read, predicted and written `chunk_size`
rows at a time, so memory stays flat however long the file; an .npz (sequence models) is one
array. The output goes to a temporary file next to it and is renamed at the end: a failed or
interrupted run leaves no half-written result.
"""

import os
import sys
import time
import zipfile
from contextlib import contextmanager
from pathlib import Path

import hydra
import numpy as np
from omegaconf import DictConfig

from deeptune import trust
from deeptune.cli import guarded, run_task
from deeptune.config import CONFIG_PATH, validate
from deeptune.errors import ConfigError
from deeptune.run.schema import PredictConfig


def predict(cfg: DictConfig) -> int:
    """Write the predictions; the number of rows."""
    validate(cfg, PredictConfig)
    with trust.trusting(cfg.trust_config):
        return _predict(cfg)


def _predict(cfg: DictConfig) -> int:
    ckpt, source = _required(cfg, "ckpt_path"), _required(cfg, "input", folder=True)
    from deeptune.predictor import load

    predictor = load(ckpt, trust_config=cfg.trust_config)
    if predictor.component is not None:  # images, texts, arrays: the data module reads them
        chunks = _component_chunks(source, predictor, cfg)
    elif source.suffix in (".csv", ".npz"):
        read = _csv_chunks if source.suffix == ".csv" else _npz_chunks
        chunks = read(source, predictor, cfg)
    else:
        raise ConfigError("input", str(source), "a .csv table or an .npz archive")
    output = Path(cfg.output).expanduser()
    started = time.perf_counter()
    with _progress(f"predicting {source.name}") as advance:
        rows = _write(chunks, predictor, output, cfg.id_column, advance)
    rate = rows / max(time.perf_counter() - started, 1e-9)
    print(f"deeptune: {rows:,} predictions of {ckpt.name} in {output} ({rate:,.0f} rows/s)")
    return rows


def _required(cfg: DictConfig, key: str, folder: bool = False) -> Path:
    if not cfg[key]:
        usage = "python predict.py ckpt_path=<run>/checkpoints/best.ckpt input=new.csv"
        raise ConfigError(key, None, f"required: {usage}")
    path = Path(cfg[key]).expanduser()
    if not (path.is_file() or (folder and path.is_dir())):
        raise ConfigError(key, str(path), "no such file" + (" or folder" if folder else ""))
    return path


def _component_chunks(path: Path, predictor, cfg: DictConfig):
    """(ids, raw inputs) per chunk for a model of a component data module (data=images, text,
    npy or the user's), which turns them into network inputs (its `predict_inputs`): a folder's
    files (sorted; their paths are the ids), a .npy's rows (memory-mapped), a table's rows
    (data=text reads its text column; `id_column` as for a CSV), or one file."""
    if path.is_dir():
        files = sorted(str(p.relative_to(path)) for p in path.rglob("*") if p.is_file())
        if not files:
            raise ConfigError("input", str(path), "the folder holds no files")
        for start in range(0, len(files), cfg.chunk_size):
            part = files[start : start + cfg.chunk_size]
            yield part, [str(path / f) for f in part]
        return
    if path.suffix == ".npy":
        rows = np.load(path, mmap_mode="r", allow_pickle=False)  # flat memory however long
        for start in range(0, len(rows), cfg.chunk_size):
            yield None, np.array(rows[start : start + cfg.chunk_size])
        return
    if path.suffix in (".csv", ".parquet"):
        import pandas as pd

        table = pd.read_csv(path) if path.suffix == ".csv" else pd.read_parquet(path)
        if cfg.id_column and cfg.id_column not in table.columns:
            raise ConfigError("id_column", cfg.id_column, f"not a column of {path.name}")
        column = predictor.state["config"].get("data", {}).get("text_column")
        if column is not None and column not in table.columns:
            have = ", ".join(map(str, table.columns))
            raise ConfigError("input", str(path), f"has no column {column!r} (it has {have})")
        for start in range(0, len(table), cfg.chunk_size):
            chunk = table.iloc[start : start + cfg.chunk_size]
            ids = chunk[cfg.id_column] if cfg.id_column else None
            yield ids, (chunk[column].tolist() if column is not None else chunk)
        return
    yield [path.name], [str(path)]


def _csv_chunks(path: Path, predictor, cfg: DictConfig):
    """(ids or None, rows) per chunk; the header is checked before any row is read."""
    import pandas as pd

    from deeptune.predictor import check_columns

    try:
        header = [str(c) for c in pd.read_csv(path, nrows=0).columns]
    except pd.errors.EmptyDataError:
        raise ConfigError("input", str(path), "the file is empty: it needs a header row") from None
    if cfg.id_column and cfg.id_column not in header:
        raise ConfigError("id_column", cfg.id_column, f"not a column of {path.name}")
    # The training target (a labelled table) and the id column are not features.
    ignore = {cfg.id_column, predictor.state.get("target")} - {None}
    check_columns(header, predictor.features, "input", ignore, str(path))
    for chunk in pd.read_csv(path, chunksize=cfg.chunk_size):
        ids = chunk[cfg.id_column] if cfg.id_column else None
        yield ids, chunk.drop(columns=[c for c in ignore if c in chunk.columns])


def _npz_chunks(path: Path, predictor, cfg: DictConfig):
    # np.load reads a non-zip file as a pickle, which can run code: only a zip reaches it.
    if not zipfile.is_zipfile(path):
        raise ConfigError("input", str(path), "not an .npz archive (numpy.savez)")
    with np.load(path, allow_pickle=False) as archive:
        for key, name in (("input_key", cfg.input_key), ("id_column", cfg.id_column)):
            if name and name not in archive:
                raise ConfigError(key, name, f"arrays in {path.name} are {list(archive.keys())}")
        x = archive[cfg.input_key]
        ids = archive[cfg.id_column] if cfg.id_column else None
    for start in range(0, len(x), cfg.chunk_size):
        part = slice(start, start + cfg.chunk_size)
        yield (ids[part] if ids is not None else None), x[part]


def _write(chunks, predictor, output: Path, id_column, advance) -> int:
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_name(f".{output.name}.tmp")
    rows = 0
    try:
        with open(tmp, "w", newline="") as f:
            for ids, x in chunks:
                frame = predictor.frame(x)
                if ids is not None:
                    frame.insert(0, id_column or "file", np.asarray(ids))
                frame.to_csv(f, header=rows == 0, index=False)
                rows += len(frame)
                advance(len(frame))
        os.replace(tmp, output)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return rows


@contextmanager
def _progress(label: str):
    """A live row count on a terminal; nothing in a log file or a pipe."""
    if not sys.stderr.isatty():
        yield lambda n: None
        return
    from rich.console import Console
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    columns = (SpinnerColumn(), TextColumn("{task.description}: {task.completed:,} rows"))
    with Progress(*columns, TimeElapsedColumn(), console=Console(stderr=True)) as bar:
        task = bar.add_task(label, total=None)
        yield lambda n: bar.advance(task, n)


@hydra.main(version_base="1.3", config_path=CONFIG_PATH, config_name="predict")
def main(cfg: DictConfig) -> int | None:
    return run_task(predict, cfg)


cli = guarded(main)

if __name__ == "__main__":
    cli()
