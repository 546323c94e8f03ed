"""Peak memory of training on a .npy file bigger than it may take: data=npy stays flat (issue 16).

    python scripts/bench_mmap.py [--gib 2] [--features 256] [--batches 300] [--batch-size 1024]
                                 [--workers 0] [--dir DIR]

Writes a `--gib` GiB float32 features file and its labels (in a temporary folder, deleted after
unless --dir is given), then runs `python train.py data=npy model=mlp` on them as a child
process for `--batches` training batches. The child's peak resident set size comes from the
kernel (os.wait4's ru_maxrss), so it covers the interpreter, torch, the split, the
standardisation pass over the training rows and every batch (with the default --workers 0 the
one process reads everything; workers would be processes of their own, not counted). Target:
under half the file's size.
"""

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _bench import PYTHON, TRAIN, check, child_env, console, load_text, run_child  # noqa: E402


def write_arrays(folder: Path, gib: float, features: int, block: int = 65536) -> tuple[Path, int]:
    """Random rows, appended block by block to a .npy file (never whole in memory, and never
    mapped: a child's peak RSS starts from what this process holds when it forks); the label is
    the sign of the first two features' sum, so the MLP has something to learn."""
    rows = int(gib * 2**30) // (4 * features)
    header = {"descr": "<f4", "fortran_order": False, "shape": (rows, features)}
    y = np.empty(rows, dtype=np.int64)
    rng = np.random.default_rng(0)
    with open(folder / "x.npy", "wb") as f:
        np.lib.format.write_array_header_1_0(f, header)
        for start in range(0, rows, block):
            chunk = rng.standard_normal((min(block, rows - start), features), dtype=np.float32)
            f.write(chunk.tobytes())
            y[start : start + len(chunk)] = chunk[:, 0] + chunk[:, 1] > 0
    np.save(folder / "y.npy", y)
    return folder / "x.npy", rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gib", type=float, default=2.0)
    parser.add_argument("--features", type=int, default=256)
    parser.add_argument("--batches", type=int, default=300)
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--dir", type=Path, default=None, help="keep the files here")
    args = parser.parse_args()
    folder = args.dir or Path(tempfile.mkdtemp(prefix="bench_mmap_", dir="/tmp"))
    folder.mkdir(parents=True, exist_ok=True)
    console.print(load_text())
    try:
        path, rows = write_arrays(folder, args.gib, args.features)
        size_mib = path.stat().st_size / 2**20
        argv = [
            PYTHON, str(TRAIN), "data=npy", f"data.path={path}", f"data.labels={folder / 'y.npy'}",
            "model=mlp", f"data.batch_size={args.batch_size}", f"data.num_workers={args.workers}",
            "trainer.max_epochs=1", f"+trainer.limit_train_batches={args.batches}",
            "+trainer.limit_val_batches=20", "test=false", "logger=csv", "threads=1",
            f"hydra.run.dir={folder / 'run'}",
        ]  # fmt: skip
        child = check(run_child(argv, cwd=folder, env=child_env(OMP_NUM_THREADS="1")), "training")
        ok = child.maxrss_mib < size_mib / 2
        read_mib = args.batches * args.batch_size * args.features * 4 / 2**20
        console.print(
            f"{rows:,} rows x {args.features} float32 ({size_mib:,.0f} MiB .npy), "
            f"{args.batches} batches of {args.batch_size:,} ({read_mib:,.0f} MiB of rows read "
            f"by index, after a standardisation pass over the training rows), "
            f"num_workers={args.workers}: peak RSS {child.maxrss_mib:,.0f} MiB "
            f"({child.maxrss_mib / size_mib:.0%} of the file; {'under' if ok else 'over'} half); "
            f"{child.wall_s:.1f} s wall with start-up"
        )
    finally:
        if args.dir is None:
            shutil.rmtree(folder, ignore_errors=True)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
