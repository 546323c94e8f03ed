"""Peak memory and speed of predict.py on a long CSV: memory must stay flat (issue 14).

    python scripts/bench_predict_memory.py [--rows 1000000] [--chunk-size 65536] [--dir DIR]

Trains a small MLP on 64-feature blobs (one epoch), writes a CSV of `--rows` random rows with
the same 64 columns, then runs `python predict.py` on it as a child process. The child's peak
resident set size comes from the kernel (os.wait4's resource usage: ru_maxrss), so it covers the
interpreter, torch and every chunk. Target: under 1 GiB for 1,000,000 rows.
"""

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _bench import PYTHON, ROOT, TRAIN, check, child_env, console, load_text, run_child  # noqa: E402

TARGET_MIB = 1024
FEATURES = 64


def write_csv(path: Path, rows: int, block: int = 50_000) -> None:
    """Random rows: one block formatted once and repeated (formatting 64 million numbers would
    take minutes; predict.py does not care whether rows repeat)."""
    import pandas as pd

    rng = np.random.default_rng(0)
    columns = [f"x{i}" for i in range(FEATURES)]
    frame = pd.DataFrame(rng.normal(0, 6, (block, FEATURES)), columns=columns)
    text = frame.to_csv(header=False, index=False, float_format="%.4f")
    lines = text.splitlines(keepends=True)
    with open(path, "w", newline="") as f:
        f.write(",".join(columns) + "\n")
        for start in range(0, rows, block):
            f.write("".join(lines[: min(block, rows - start)]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--chunk-size", type=int, default=65536)
    parser.add_argument("--dir", type=Path, default=None, help="keep the files here")
    args = parser.parse_args()
    folder = args.dir or Path(tempfile.mkdtemp(prefix="bench_predict_"))
    folder.mkdir(parents=True, exist_ok=True)
    env = child_env(OMP_NUM_THREADS="1")
    console.print(load_text())

    run = folder / "run"
    train = [PYTHON, str(TRAIN), "data=blobs", "trainer.max_epochs=1", "logger=csv", "threads=1"]
    check(run_child([*train, f"hydra.run.dir={run}"], cwd=folder, env=env), "training")
    source = folder / "rows.csv"
    write_csv(source, args.rows)
    size_mib = source.stat().st_size / 2**20

    argv = [PYTHON, str(ROOT / "predict.py"), f"ckpt_path={run / 'checkpoints' / 'best.ckpt'}"]
    argv += [f"input={source}", f"output={folder / 'preds.csv'}", f"chunk_size={args.chunk_size}"]
    argv.append(f"hydra.run.dir={folder / 'predict'}")
    child = check(run_child(argv, cwd=folder, env=env), "predict.py")
    ok = child.maxrss_mib < TARGET_MIB
    console.print(child.stdout.strip())
    console.print(
        f"{args.rows:,} rows x {FEATURES} columns ({size_mib:,.0f} MiB CSV), chunk_size "
        f"{args.chunk_size:,}: peak RSS {child.maxrss_mib:,.0f} MiB "
        f"({'under' if ok else 'over'} {TARGET_MIB} MiB); {child.wall_s:.1f} s wall with start-up "
        f"and imports ({args.rows / child.wall_s:,.0f} rows/s overall)"
    )
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
