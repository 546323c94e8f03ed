"""What pruning buys: the same Bayesian sweep with and without Optuna's median pruner.

    python scripts/bench_pruning.py [--trials 12] [--epochs 10]

Prints, for each variant, the epochs trained in total, the wall time, the trial states and the
best validation accuracy.
"""

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def sweep(folder: Path, trials: int, epochs: int, pruner: str) -> dict:
    command = [
        sys.executable,
        str(ROOT / "train.py"),
        "-m",
        "hparams_search=bayes",
        "logger=csv",
        f"hydra.sweeper.n_trials={trials}",
        f"hydra.sweeper.pruner={pruner}",
        f"trainer.max_epochs={epochs}",
        "~callbacks.early_stopping",
        "~callbacks.progress_bar",
        f"hydra.sweep.dir={folder}",
    ]
    started = time.perf_counter()
    subprocess.run(command, check=True, cwd=folder.parent, capture_output=True)
    wall = time.perf_counter() - started
    jobs = [json.loads(p.read_text()) for p in folder.glob("*/metrics.json")]
    results = yaml.safe_load((folder / "optimization_results.yaml").read_text())
    return {
        "pruner": pruner,
        "epochs": sum(j["epochs"] for j in jobs),
        "wall_s": wall,
        "states": results["trials"],
        "best": results.get("best_value"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=12)
    parser.add_argument("--epochs", type=int, default=10)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        rows = [sweep(Path(tmp) / p, args.trials, args.epochs, p) for p in ("none", "median")]
    print(f"{args.trials}-trial bayes sweep, {args.epochs} epochs per trial, on digits")
    print(f"{'pruner':8} {'epochs':>7} {'wall s':>8} {'best val/acc':>13}  states")
    for r in rows:
        print(
            f"{r['pruner']:8} {r['epochs']:7d} {r['wall_s']:8.1f} {r['best']:13.4f}  {r['states']}"
        )
    none, median = rows
    print(
        f"pruning trained {median['epochs'] / none['epochs']:.2f}x the epochs in "
        f"{median['wall_s'] / none['wall_s']:.2f}x the time"
    )


if __name__ == "__main__":
    main()
