"""deeptune's default run against the lightning-hydra-template's (LHT) equivalent, fresh processes.

    python scripts/bench_lht.py --lht DIR [--pairs 3] [--epochs 30] [--width 128] [--seed 42]
        [--deps DIR]

DIR is a checkout of https://github.com/ashleve/lightning-hydra-template (its own requirements
installed: `pip install rootutils hydra-colorlog`, or `pip install --target D ...` and
`--deps D`). LHT ships an MNIST data module that downloads its data set; for a like-for-like
run this script writes a small adapter into DIR (nothing of LHT's is copied here):
`src/data/digits_datamodule.py` and `configs/data/digits.yaml`, the same scikit-learn digits,
standardised on a stratified 70/15/15 split, fed through LHT's usual `DataLoader`s.

The two runs, each `python .../train.py` as its README says, alternating (the order flips every
pair), one torch thread each (OMP_NUM_THREADS=1; deeptune `threads=1`), the same data, epochs,
batch size (64), seed and optimiser (Adam, lr 1e-3):

- LHT: its defaults (checkpoints, early stopping with patience 100, model summary, rich progress
  bar, the config tree printed, no logger, ReduceLROnPlateau) with its SimpleDenseNet of three
  hidden layers of `--width` units with batch norm;
- deeptune: its defaults (`logger=default`: CSV, W&B only with a key) and the same network
  (`model.depth=3 model.width=W model.norm=batch`), early stopping off as LHT's never fires.

LHT tests its best checkpoint, which holds its network object; torch >= 2.6 refuses to unpickle
that by default, so LHT's runs get TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1 (deeptune's checkpoints
load with weights_only=True). Prints each run's wall and CPU time (os.wait4) and test accuracy,
the medians and the ratio; the target of issue 18: deeptune's default run faster than LHT's.
"""

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _bench import (  # noqa: E402
    PYTHON,
    TRAIN,
    check,
    child_env,
    console,
    load_text,
    median,
    run_child,
    table,
    verdict,
)

ADAPTER = """\
# Written by deeptune's scripts/bench_lht.py: LHT's MNIST data module, on scikit-learn's digits.
import torch
from lightning import LightningDataModule
from torch.utils.data import DataLoader, TensorDataset


class DigitsDataModule(LightningDataModule):
    def __init__(self, batch_size: int = 64, seed: int = 42) -> None:
        super().__init__()
        self.save_hyperparameters(logger=False)

    def setup(self, stage=None) -> None:
        if hasattr(self, "data_train"):
            return
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split
        from sklearn.preprocessing import StandardScaler

        x, y = load_digits(return_X_y=True)
        seed = self.hparams.seed
        train, rest = train_test_split(range(len(y)), test_size=0.3, stratify=y, random_state=seed)
        val, test = train_test_split(rest, test_size=0.5, stratify=y[rest], random_state=seed)
        scaler = StandardScaler().fit(x[train])

        def dataset(rows):
            images = torch.tensor(scaler.transform(x[rows]), dtype=torch.float32)
            return TensorDataset(images.view(-1, 1, 8, 8), torch.tensor(y[rows]))

        self.data_train, self.data_val, self.data_test = map(dataset, (train, val, test))

    def train_dataloader(self):
        return DataLoader(self.data_train, batch_size=self.hparams.batch_size, shuffle=True)

    def val_dataloader(self):
        return DataLoader(self.data_val, batch_size=self.hparams.batch_size)

    def test_dataloader(self):
        return DataLoader(self.data_test, batch_size=self.hparams.batch_size)
"""
ADAPTER_CONFIG = "_target_: src.data.digits_datamodule.DigitsDataModule\nbatch_size: 64\n"


def prepare(lht: Path) -> None:
    if not (lht / "src" / "train.py").is_file() or not (lht / "configs" / "train.yaml").is_file():
        raise SystemExit(f"--lht {lht}: not a lightning-hydra-template checkout (no src/train.py)")
    for path, text in (
        (lht / "src" / "data" / "digits_datamodule.py", ADAPTER),
        (lht / "configs" / "data" / "digits.yaml", ADAPTER_CONFIG),
    ):
        if not path.is_file() or path.read_text() != text:
            path.write_text(text)
            console.print(f"wrote the digits adapter {path}")
    (lht / ".project-root").touch()  # rootutils' marker (a git checkout has it)


def run_lht(args, folder: Path, i: int) -> dict:
    run_dir = folder / f"lht_{i}"
    w = args.width
    argv = [
        PYTHON,
        "src/train.py",
        "data=digits",
        "model.net.input_size=64",
        f"model.net.lin1_size={w}",
        f"model.net.lin2_size={w}",
        f"model.net.lin3_size={w}",
        f"trainer.max_epochs={args.epochs}",
        f"seed={args.seed}",
        f"hydra.run.dir={run_dir}",
    ]
    extra = {"OMP_NUM_THREADS": "1", "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD": "1"}
    if args.deps:
        extra["PYTHONPATH"] = os.pathsep.join(
            filter(None, [str(args.deps), os.environ.get("PYTHONPATH")])
        )
    child = check(run_child(argv, cwd=args.lht, env=child_env(**extra)), "LHT's src/train.py")
    acc = _last_float(child.stdout + child.stderr, "test/acc")
    return {"wall": child.wall_s, "cpu": child.cpu_s, "acc": acc}


def run_deeptune(args, folder: Path, i: int) -> dict:
    run_dir = folder / f"deeptune_{i}"
    argv = [
        PYTHON,
        str(TRAIN),
        "model.depth=3",
        f"model.width={args.width}",
        "model.norm=batch",
        "~callbacks.early_stopping",
        f"trainer.max_epochs={args.epochs}",
        "data.batch_size=64",
        f"seed={args.seed}",
        "threads=1",
        f"hydra.run.dir={run_dir}",
    ]
    child = check(run_child(argv, cwd=folder, env=child_env(OMP_NUM_THREADS="1")), "train.py")
    metrics = json.loads((run_dir / "metrics.json").read_text())
    return {"wall": child.wall_s, "cpu": child.cpu_s, "acc": metrics["test"]["acc"]}


def _last_float(text: str, key: str) -> float | None:
    """LHT prints its test metrics in a rich table: the number on the last line naming `key`."""
    for line in reversed(text.splitlines()):
        if key in line:
            for token in reversed(line.replace("│", " ").replace("┃", " ").split()):
                try:
                    return float(token)
                except ValueError:
                    continue
    return None


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--lht", type=Path, required=True, help="a lightning-hydra-template checkout"
    )
    parser.add_argument("--deps", type=Path, help="a folder put on LHT's PYTHONPATH (its extras)")
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--width", type=int, default=128)
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()
    args.lht = args.lht.resolve()
    prepare(args.lht)
    console.print(load_text())
    runs: dict[str, list[dict]] = {"LHT": [], "deeptune": []}
    with tempfile.TemporaryDirectory(prefix="bench_lht_") as tmp:
        for i in range(args.pairs):
            for side in ("LHT", "deeptune") if i % 2 == 0 else ("deeptune", "LHT"):
                r = (run_lht if side == "LHT" else run_deeptune)(args, Path(tmp), i)
                runs[side].append(r)
                acc = "?" if r["acc"] is None else f"{r['acc']:.4f}"
                console.print(
                    f"pair {i + 1}/{args.pairs} {side:8}: wall {r['wall']:.2f} s, "
                    f"CPU {r['cpu']:.2f} s, test acc {acc}"
                )
    med = {
        s: {k: median(r[k] for r in rs) for k in ("wall", "cpu", "acc")} for s, rs in runs.items()
    }
    wall = med["deeptune"]["wall"] / med["LHT"]["wall"]
    cpu = med["deeptune"]["cpu"] / med["LHT"]["cpu"]
    rows = [[s, f"{m['wall']:.2f}", f"{m['cpu']:.2f}", f"{m['acc']:.4f}"] for s, m in med.items()]
    rows.append(["deeptune / LHT", f"{wall:.2f}x", f"{cpu:.2f}x", ""])
    title = (
        f"a default run, whole process: MLP 64->[{args.width}]x3 (batch norm)->10 on digits, "
        f"batch 64, {args.epochs} epochs, 1 thread, medians of {args.pairs}"
    )
    console.print(table(title, ["", "wall s", "CPU s", "test acc"], rows))
    console.print(f"deeptune's default run faster than LHT's (wall): {verdict(wall < 1.0)}")


if __name__ == "__main__":
    main()
