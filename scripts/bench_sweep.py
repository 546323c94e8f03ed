"""Parallel sweeps: the same grid sweep with Hydra's basic launcher and with joblib on 2 workers.

    python scripts/bench_sweep.py [--epochs 30] [--lrs 1e-3,3e-3] [--widths 32,64,128,256]
        [--n-jobs 2] [--threads 1] [--quick] [--keep DIR] [-- extra train.py overrides]

Both sweeps run `python train.py -m` with `logger=csv ~callbacks.early_stopping` over
optimizer.lr x model.width (8 trials by default); the second adds
`hydra/launcher=joblib hydra.launcher.n_jobs=N`. Prints both wall times (the whole sweep
process, os.wait4), their ratio against the target of issue 8 (parallel <= 0.6x sequential),
the CPU time the parallel sweep spends beyond the sequential one (its workers' start-up and
imports: os.wait4 counts the worker processes the sweep waited for), and whether every trial's
metrics.json figures (train / val / test acc, f1, loss, best epoch)
are the same in both: bit for bit, and with loss / f1 within 1e-5. Both sweeps run each trial
on 1 thread by default, so the trials compute the same sums in the same order; with
`--threads auto` a sequential trial gets both cores and a joblib trial one, and float sums
differ in the last bits (about 1e-7).
"""

import argparse
import json
import sys
import tempfile
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _bench import (  # noqa: E402
    PYTHON,
    TRAIN,
    check,
    child_env,
    console,
    load_text,
    run_child,
    table,
    verdict,
)

TARGET = 0.6
TOLERANCE = 1e-5


def sweep(args, folder: Path, parallel: bool) -> tuple[float, float, float, dict]:
    """(wall seconds, peak RSS MiB of the sweep process, CPU seconds of the sweep and its worker
    processes, {trial overrides: metrics})."""
    argv = [
        PYTHON,
        str(TRAIN),
        "-m",
        "logger=csv",
        "~callbacks.early_stopping",
        f"trainer.max_epochs={args.epochs}",
        f"threads={args.threads}",
        f"optimizer.lr={args.lrs}",
        f"model.width={args.widths}",
        f"hydra.sweep.dir={folder}",
        *args.overrides,
    ]
    if parallel:
        argv += ["hydra/launcher=joblib", f"hydra.launcher.n_jobs={args.n_jobs}"]
    child = check(run_child(argv, cwd=folder.parent, env=child_env()), " ".join(argv[1:]))
    trials = {}
    for metrics_file in sorted(folder.glob("*/metrics.json")):
        job = metrics_file.parent
        overrides = yaml.safe_load((job / ".hydra" / "overrides.yaml").read_text())
        key = " ".join(o for o in overrides if o.startswith(("optimizer.lr", "model.width")))
        trials[key] = json.loads(metrics_file.read_text())
    return child.wall_s, child.maxrss_mib, child.cpu_s, trials


def figures(metrics: dict) -> dict[str, float]:
    out = {
        f"{split}/{name}": value
        for split in ("train", "val", "test")
        for name, value in metrics.get(split, {}).items()
    }
    out.update(best_epoch=metrics.get("best_epoch"), epochs=metrics.get("epochs"))
    return out


def close(a: dict, b: dict) -> bool:
    """Accuracies and epochs equal, the other figures (loss, f1) within TOLERANCE: what is left
    when float sums run in another order (one thread per job instead of two)."""
    if a.keys() != b.keys():
        return False
    exact = [k for k in a if k.endswith("acc") or "epoch" in k]
    return all(a[k] == b[k] for k in exact) and all(
        abs(a[k] - b[k]) <= TOLERANCE for k in a if k not in exact and a[k] is not None
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--epochs", type=int, default=30, help="per trial (the default run's)")
    parser.add_argument("--lrs", default="1e-3,3e-3", help="optimizer.lr values")
    parser.add_argument("--widths", default="32,64,128,256", help="model.width values")
    parser.add_argument("--n-jobs", type=int, default=2, help="joblib workers")
    parser.add_argument("--threads", default="1", help="train.py's `threads` in both sweeps")
    parser.add_argument("--quick", action="store_true", help="2 trials of 1 epoch: a smoke test")
    parser.add_argument("--keep", type=Path, help="keep the sweep folders here")
    parser.add_argument("overrides", nargs="*", help="extra train.py overrides, after --")
    args = parser.parse_args()
    if args.quick:
        args.epochs, args.lrs, args.widths = 1, "1e-3", "32,64"
    n_trials = len(args.lrs.split(",")) * len(args.widths.split(","))
    console.print(load_text())
    with tempfile.TemporaryDirectory(prefix="bench_sweep_") as tmp:
        root = args.keep or Path(tmp)
        root.mkdir(parents=True, exist_ok=True)
        seq_wall, seq_rss, seq_cpu, seq = sweep(args, root / "sequential", parallel=False)
        console.print(f"sequential: {seq_wall:.1f} s, {len(seq)} trials, {seq_cpu:.1f} CPU s")
        par_wall, par_rss, par_cpu, par = sweep(args, root / "parallel", parallel=True)
        console.print(f"parallel:   {par_wall:.1f} s, {len(par)} trials, {par_cpu:.1f} CPU s")

    rows, same_all, close_all, worst = [], True, True, 0.0
    for key in sorted(seq, key=lambda k: [float(v.split("=")[1]) for v in k.split()]):
        a, b = figures(seq[key]), figures(par.get(key, {}))
        diffs = [abs(a[k] - b[k]) for k in a if a[k] is not None and b.get(k) is not None]
        same = a == b
        same_all &= same
        close_all &= close(a, b)
        worst = max([worst, *diffs])
        rows.append(
            [
                key,
                f"{a['val/acc']:.4f}",
                f"{b.get('val/acc', float('nan')):.4f}",
                f"{a['test/acc']:.4f}",
                f"{b.get('test/acc', float('nan')):.4f}",
                f"{seq[key].get('duration_s', float('nan')):.1f}",
                f"{par.get(key, {}).get('duration_s', float('nan')):.1f}",
                f"{seq[key].get('threads')}/{par.get(key, {}).get('threads')}",
                "yes" if same else f"no: max diff {max(diffs, default=0):.2g}",
            ]
        )
    complete = len(seq) == len(par) == n_trials
    same_all &= complete
    close_all &= complete
    columns = [
        "trial",
        "seq val acc",
        "par val acc",
        "seq test acc",
        "par test acc",
        "seq s",
        "par s",
        "threads seq/par",
        "identical",
    ]
    title = (
        f"{n_trials}-trial grid sweep (optimizer.lr x model.width), {args.epochs} epoch(s) each, "
        f"on digits"
    )
    caption = "seq s / par s: the trial's own duration_s (metrics.json), start-up excluded"
    console.print(table(title, columns, rows, caption))
    ratio = par_wall / seq_wall
    checks = [
        [
            "sequential wall",
            f"{seq_wall:.1f} s (peak RSS {seq_rss:.0f} MiB, largest process)",
            "",
            None,
        ],
        [
            f"joblib n_jobs={args.n_jobs} wall",
            f"{par_wall:.1f} s (peak RSS {par_rss:.0f} MiB, largest process)",
            "",
            None,
        ],
        ["parallel / sequential", f"{ratio:.2f}x", f"<= {TARGET}x", ratio <= TARGET],
        [
            # What the workers repeat (start-up, imports): the cost that two cores must cover;
            # unlike wall times, it hardly depends on what else the machine runs.
            "CPU parallel - sequential",
            f"{par_cpu - seq_cpu:+.1f} s ({seq_cpu:.1f} s sequential, workers' included)",
            "",
            None,
        ],
        [
            "identical per-trial results",
            "yes" if same_all else f"no: max abs diff {worst:.3g}",
            "yes",
            same_all,
        ],
        [
            "same accuracies and best epochs",
            "yes" if close_all else "no",
            f"yes (others within {TOLERANCE:g})",
            close_all,
        ],
    ]
    rows = [[n, v, t, "" if ok is None else verdict(ok)] for n, v, t, ok in checks]
    console.print(table("issue 8 target", ["figure", "measured", "target", ""], rows))


if __name__ == "__main__":
    main()
