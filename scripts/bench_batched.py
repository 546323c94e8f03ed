"""Batched restarts against sequential ones: `restarts=N` of the default MLP on digits.

    python scripts/bench_batched.py [--pairs 3] [--restarts 8] [--epochs 30] [--threads 1]
        [--quick] [-- extra train.py overrides]

Both sides are one in-process `deeptune.train.train(cfg)` call on the same composed config
(the defaults, `logger=csv` so that neither pays W&B's start-up per restart), differing only in
`restarts_backend`; the time is the whole call: data, the N fits, the tests of the kept
checkpoints, the summary. The pairs interleave (the order flips every pair) and the medians are
compared. Also checks that each batched member's val/acc equals its sequential restart's.
Target (issue 18): batched >= 3x faster.
"""

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONFIG_DIR = ROOT / "src" / "deeptune" / "configs"
TARGET = 3.0


def compose(overrides: list[str], out_dir: Path):
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from omegaconf import open_dict

    with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
        cfg = hydra_compose("train", overrides=overrides)
    with open_dict(cfg):
        cfg.paths.output_dir = str(out_dir)
        cfg.paths.root_dir = str(ROOT)
    return cfg


def one(backend: str, overrides: list[str], out_dir: Path, restarts: int) -> tuple[float, list]:
    from deeptune.train import train

    cfg = compose([*overrides, f"restarts_backend={backend}"], out_dir)
    started = time.perf_counter()
    train(cfg)
    seconds = time.perf_counter() - started
    members = [
        json.loads((out_dir / f"restart_{i}" / "metrics.json").read_text()) for i in range(restarts)
    ]
    return seconds, [(m["val"]["acc"], m["epochs"]) for m in members]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--restarts", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="1 pair, 2 restarts, 2 epochs")
    args, extra = parser.parse_known_args()
    extra = [e for e in extra if e != "--"]
    if args.quick:
        args.pairs, args.restarts, args.epochs = 1, 2, 2
    import torch

    torch.set_num_threads(args.threads)
    overrides = [
        f"restarts={args.restarts}",
        f"trainer.max_epochs={args.epochs}",
        f"threads={args.threads}",
        "logger=csv",
        "callbacks.progress_bar=null",
        *extra,
    ]
    times: dict[str, list[float]] = {"sequential": [], "batched": []}
    same = True
    with tempfile.TemporaryDirectory() as tmp:
        for pair in range(args.pairs):
            order = ("sequential", "batched") if pair % 2 == 0 else ("batched", "sequential")
            seen = {}
            for backend in order:
                out = Path(tmp) / f"{pair}_{backend}"
                seconds, seen[backend] = one(backend, overrides, out, args.restarts)
                times[backend].append(seconds)
            same &= seen["batched"] == seen["sequential"]
            print(
                f"pair {pair + 1}: sequential {times['sequential'][-1]:.2f} s, "
                f"batched {times['batched'][-1]:.2f} s, "
                f"members' val/acc and epochs equal: {seen['batched'] == seen['sequential']}",
                flush=True,
            )
    seq, bat = (statistics.median(times[k]) for k in ("sequential", "batched"))
    ratio = seq / bat
    print(
        f"restarts={args.restarts} of the default MLP on digits, {args.epochs} epochs max, "
        f"{args.threads} thread(s), {args.pairs} interleaved pairs, medians: sequential "
        f"{seq:.2f} s, batched {bat:.2f} s: batched {ratio:.2f}x faster "
        f"(target >= {TARGET:.0f}x: {'met' if ratio >= TARGET else 'NOT met'}); "
        f"every member equal to its sequential restart: {same}"
    )
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
