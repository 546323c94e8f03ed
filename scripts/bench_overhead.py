"""deeptune's overhead: `python train.py` against a hand-written PyTorch loop, both fresh processes.

    python scripts/bench_overhead.py [--pairs 3] [--epochs 30] [--depth 4] [--width 256]
        [--batch-size 64] [--threads 1] [--quick] [--keep DIR] [-- extra train.py overrides]

The plain loop trains the same MLP (built from configs/model/mlp.yaml, seeded like train.py, so
the initial weights are the same), with the same Adam (configs/optimizer/adam.yaml), on the same
standardised digits split, in the same per-(seed, epoch) shuffled order as TensorBatches, with
validation every epoch; it keeps the best weights by validation accuracy and tests them, as
train.py tests its best checkpoint. train.py runs with its defaults (checkpoints, progress bar,
LR monitor, model summary, the other default callbacks) and its default loggers (`logger=default`:
CSV, W&B off without an API key), early stopping off so
both train every epoch. The two alternate (the order flips every pair).

Prints each pair's fit time (seconds in trainer.fit / in the plain epoch loop), whole-process
wall time and peak RSS (os.wait4), and test accuracy; then the medians, the ratios and the
targets of issue 8: fit <= 1.4x, whole process <= 1.3x, the same accuracy within 1 point.
Anything after `--` is passed to train.py, e.g. `-- ~callbacks.grad_health` to see what one
callback costs.

    python scripts/bench_overhead.py --sweep 8 [--pairs 2] [...]

instead measures what a trial of a multirun costs beyond its fit: `train.py -m seed=...` with 1
job and with N jobs, alternating; a trial's cost is the N-job sweep's wall time less the 1-job
sweep's, over N - 1 (the process's start-up, paid once, left out), against the median of the
trials' own fit times (metrics.json fit_s); the target of issue 18 is <= 1.5x.
"""

import argparse
import hashlib
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _bench import (  # noqa: E402
    PYTHON,
    ROOT,
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

CONFIGS = ROOT / "src" / "deeptune" / "configs"
TARGETS = {"fit": 1.4, "wall": 1.3, "acc_pts": 1.0, "trial": 1.5}


# ---------------------------------------------------------------------------------------------
# The plain PyTorch side: runs in its own process (`--plain`), imports no Lightning.


def split_digest(splits: dict) -> str:
    """A short hash of the train / val / test arrays: both sides must train on the same data."""
    h = hashlib.sha1()
    for name in ("train", "val", "test"):
        x, y = splits[name]
        h.update(x.tobytes())
        h.update(y.tobytes())
    return h.hexdigest()[:12]


def plain_split(table, val_fraction, test_fraction, seed, standardize):
    """deeptune.data.datamodule.split without a fold, copied so this process needs no Lightning
    (that module imports it); the parent checks that both give the same arrays."""
    import numpy as np
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler

    idx = np.arange(len(table.y))
    rest, test = train_test_split(idx, test_size=test_fraction, random_state=seed, stratify=table.y)
    train, val = train_test_split(
        rest,
        test_size=val_fraction / (1 - test_fraction),
        random_state=seed,
        stratify=table.y[rest],
    )
    x = table.x
    if standardize:
        x = StandardScaler().fit(x[train]).transform(x).astype(np.float32)
    return {n: (x[i], table.y[i]) for n, i in (("train", train), ("val", val), ("test", test))}


def build_model(model_cfg, n_in: int, n_classes: int):
    """The network from its config, whichever names its constructor gives the input and the
    output sizes (`in_features, num_classes` or `input_shape, outputs`)."""
    import inspect

    from hydra.utils import get_class, instantiate

    from deeptune.models.schema import NetNode

    params = inspect.signature(get_class(model_cfg._target_)).parameters
    names = [("in_features", "num_classes"), ("input_shape", "outputs")]
    n_in_name, n_out_name = next((a, b) for a, b in names if a in params and b in params)
    # keys deeptune's builder acts on itself (`compile`), as deeptune.builders.module drops them
    node = {k: v for k, v in model_cfg.items() if k not in NetNode.BUILDER_KEYS}
    return instantiate(node, **{n_in_name: n_in, n_out_name: n_classes})


def plain_main(args) -> None:
    """A hand-written loop: tensor slices, no DataLoader, no logging, the best weights in memory."""
    import resource

    import numpy as np
    import torch
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    from deeptune.data.sources import digits
    from deeptune.threads import apply_threads

    apply_threads(args.threads)  # the same rule as train.py's `threads`
    data_cfg = OmegaConf.load(CONFIGS / "train.yaml").data
    splits = plain_split(
        digits(),
        data_cfg.val_fraction,
        data_cfg.test_fraction,
        data_cfg.split_seed,
        data_cfg.standardize,
    )
    (x_tr, y_tr), (x_va, y_va), (x_te, y_te) = (
        tuple(torch.from_numpy(a) for a in splits[n]) for n in ("train", "val", "test")
    )
    eval_bs = data_cfg.eval_batch_size

    torch.manual_seed(args.seed)  # as L.seed_everything: the MLP's init draws from this
    model_cfg = OmegaConf.load(CONFIGS / "model" / "mlp.yaml")
    model_cfg.depth, model_cfg.width = args.depth, args.width
    model = build_model(model_cfg, x_tr.shape[1], int(y_tr.max()) + 1)
    # The first optimiser of a process imports torch._dynamo (about a second), which
    # `import lightning` already did on the other side: this is outside the fit clock too.
    optimizer = instantiate(OmegaConf.load(CONFIGS / "optimizer" / "adam.yaml"))(model.parameters())
    loss_fn = torch.nn.functional.cross_entropy

    def correct(x, y) -> int:
        model.eval()
        with torch.inference_mode():
            hits = sum(
                int((model(xb).argmax(1) == yb).sum())
                for xb, yb in zip(x.split(eval_bs), y.split(eval_bs), strict=True)
            )
        model.train()
        return hits

    started, cpu_started = time.perf_counter(), time.process_time()
    best, best_state, best_epoch = -1, None, 0
    model.train()
    for epoch in range(args.epochs):
        # TensorBatches' order: a permutation seeded by (seed, epoch).
        seed = int(np.random.SeedSequence([args.seed, epoch]).generate_state(1)[0])
        order = torch.randperm(len(x_tr), generator=torch.Generator().manual_seed(seed))
        for idx in order.split(args.batch_size):
            optimizer.zero_grad()
            loss = loss_fn(model(x_tr[idx]), y_tr[idx])
            loss.backward()
            optimizer.step()
        hits = correct(x_va, y_va)
        if hits > best:  # ModelCheckpoint(mode=max) keeps the first best
            best, best_epoch = hits, epoch + 1
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    fit_s = time.perf_counter() - started
    fit_cpu_s = time.process_time() - cpu_started
    model.load_state_dict(best_state)
    result = {
        "fit_s": round(fit_s, 3),
        "fit_cpu_s": round(fit_cpu_s, 3),
        "val_acc": best / len(y_va),
        "test_acc": correct(x_te, y_te) / len(y_te),
        "best_epoch": best_epoch,
        "threads": torch.get_num_threads(),
        "split": split_digest(splits),
        "lightning_imported": "lightning" in sys.modules,
        "maxrss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"plain loop: fit {fit_s:.2f} s, test acc {result['test_acc']:.4f}")


# ---------------------------------------------------------------------------------------------
# The harness.


def project_split_digest() -> str:
    """The digest of the split that train.py trains on (this imports Lightning, here only)."""
    from omegaconf import OmegaConf

    from deeptune.data.datamodule import split
    from deeptune.data.sources import digits

    d = OmegaConf.load(CONFIGS / "train.yaml").data
    return split_digest(
        split(digits(), d.val_fraction, d.test_fraction, d.split_seed, d.standardize)
    )


def run_plain(args, folder: Path, i: int) -> dict:
    out = folder / f"plain_{i}.json"
    argv = [PYTHON, __file__, "--plain", "--out", str(out), *common_args(args)]
    child = check(run_child(argv, cwd=folder, env=child_env()), "the plain loop")
    result = json.loads(out.read_text())
    return {
        "fit": result["fit_s"],
        "fit_cpu": result["fit_cpu_s"],
        "wall": child.wall_s,
        "cpu": child.cpu_s,
        "rss": child.maxrss_mib,
        "acc": result["test_acc"],
        "best_epoch": result["best_epoch"],
        "threads": result["threads"],
        "split": result["split"],
        "lightning": result["lightning_imported"],
    }


def run_train(args, folder: Path, i: int) -> dict:
    run_dir = folder / f"train_{i}"
    argv = [
        PYTHON,
        str(TRAIN),
        "~callbacks.early_stopping",
        f"model.depth={args.depth}",
        f"model.width={args.width}",
        f"trainer.max_epochs={args.epochs}",
        f"data.batch_size={args.batch_size}",
        f"seed={args.seed}",
        f"threads={args.threads}",
        f"hydra.run.dir={run_dir}",
        *args.overrides,
    ]
    child = check(run_child(argv, cwd=folder, env=child_env()), "train.py")
    metrics = json.loads((run_dir / "metrics.json").read_text())
    return {
        "fit": metrics["fit_s"],
        "fit_cpu": metrics["fit_cpu_s"],
        "wall": child.wall_s,
        "cpu": child.cpu_s,
        "rss": child.maxrss_mib,
        "acc": metrics["test"]["acc"],
        "best_epoch": metrics.get("best_epoch"),
        "threads": metrics.get("threads"),
    }


def common_args(args) -> list[str]:
    return [
        f"--epochs={args.epochs}",
        f"--depth={args.depth}",
        f"--width={args.width}",
        f"--batch-size={args.batch_size}",
        f"--seed={args.seed}",
        f"--threads={args.threads}",
    ]


def report(args, pairs: list[tuple[dict, dict]], digest_ok: bool) -> None:
    rows = []
    for i, (p, t) in enumerate(pairs, 1):
        rows.append(
            [
                i,
                f"{p['fit']:.2f}",
                f"{t['fit']:.2f}",
                f"{t['fit'] / p['fit']:.2f}x",
                f"{p['wall']:.2f}",
                f"{t['wall']:.2f}",
                f"{t['wall'] / p['wall']:.2f}x",
                f"{p['rss']:.0f}",
                f"{t['rss']:.0f}",
                f"{p['acc']:.4f}",
                f"{t['acc']:.4f}",
            ]
        )
    keys = ("fit", "fit_cpu", "wall", "cpu", "rss", "acc")
    med = {
        side: {k: median(r[k] for r in runs) for k in keys}
        for side, runs in (("plain", [p for p, _ in pairs]), ("train", [t for _, t in pairs]))
    }
    mp, mt = med["plain"], med["train"]
    fit_ratio, wall_ratio = mt["fit"] / mp["fit"], mt["wall"] / mp["wall"]
    rows.append(
        [
            "median",
            f"{mp['fit']:.2f}",
            f"{mt['fit']:.2f}",
            f"{fit_ratio:.2f}x",
            f"{mp['wall']:.2f}",
            f"{mt['wall']:.2f}",
            f"{wall_ratio:.2f}x",
            f"{mp['rss']:.0f}",
            f"{mt['rss']:.0f}",
            f"{mp['acc']:.4f}",
            f"{mt['acc']:.4f}",
        ]
    )
    threads = pairs[0][1]["threads"]
    title = (
        f"plain PyTorch loop vs python train.py: MLP 64->[{args.width}]x{args.depth}->10 on "
        f"digits, batch {args.batch_size}, {args.epochs} epochs, {threads} torch thread(s)"
    )
    columns = [
        "pair",
        "plain fit s",
        "train fit s",
        "fit ratio",
        "plain wall s",
        "train wall s",
        "wall ratio",
        "plain RSS MiB",
        "train RSS MiB",
        "plain test acc",
        "train test acc",
    ]
    extra = " ".join(args.overrides) or "none"
    caption = (
        "fit: seconds in trainer.fit (metrics.json fit_s) / in the plain epoch loop; wall and "
        f"peak RSS: the whole process (os.wait4). Extra train.py overrides: {extra}"
    )
    console.print(table(title, columns, rows, caption))
    acc_pts = 100 * abs(mt["acc"] - mp["acc"])
    outside = (mt["wall"] - mt["fit"], mp["wall"] - mp["fit"])
    checks = [
        ["fit time ratio", f"{fit_ratio:.2f}x", f"<= {TARGETS['fit']}x", fit_ratio <= 1.4],
        ["whole-process ratio", f"{wall_ratio:.2f}x", f"<= {TARGETS['wall']}x", wall_ratio <= 1.3],
        ["test accuracy gap", f"{acc_pts:.2f} pt", "<= 1 pt", acc_pts <= TARGETS["acc_pts"]],
        ["same data split", "yes" if digest_ok else "NO", "yes", digest_ok],
        [
            "fit CPU-time ratio (info)",
            f"{mt['fit_cpu'] / mp['fit_cpu']:.2f}x ({mt['fit_cpu']:.2f} / {mp['fit_cpu']:.2f} s)",
            "",
            None,
        ],
        [
            "whole-process CPU ratio (user+sys, info)",
            f"{mt['cpu'] / mp['cpu']:.2f}x ({mt['cpu']:.1f} / {mp['cpu']:.1f} s)",
            "",
            None,
        ],
    ]
    rows = [
        [name, value, target, "" if ok is None else verdict(ok)]
        for (name, value, target, ok) in checks
    ]
    console.print(table("issue 8 targets", ["figure", "measured", "target", ""], rows))
    console.print(
        f"outside fit (start-up, imports, data, test, reporting): train.py {outside[0]:.2f} s, "
        f"plain {outside[1]:.2f} s;  peak RSS of the default run: {mt['rss']:.0f} MiB "
        f"(plain {mp['rss']:.0f} MiB)"
    )


def run_sweep(args, folder: Path, jobs: int, i: int) -> dict:
    """A `train.py -m` over `jobs` seeds with the same settings as run_train."""
    sweep_dir = folder / f"sweep{jobs}_{i}"
    seeds = ",".join(str(args.seed + j) for j in range(jobs))
    argv = [
        PYTHON,
        str(TRAIN),
        "-m",
        "~callbacks.early_stopping",
        f"model.depth={args.depth}",
        f"model.width={args.width}",
        f"trainer.max_epochs={args.epochs}",
        f"data.batch_size={args.batch_size}",
        f"seed={seeds}",
        f"threads={args.threads}",
        f"hydra.sweep.dir={sweep_dir}",
        *args.overrides,
    ]
    child = check(run_child(argv, cwd=folder, env=child_env()), "train.py -m")
    files = sorted(sweep_dir.glob("*/metrics.json"))
    if len(files) != jobs:
        raise SystemExit(f"{sweep_dir}: {len(files)} of {jobs} jobs wrote metrics.json")
    metrics = [json.loads(f.read_text()) for f in files]
    return {
        "wall": child.wall_s,
        "cpu": child.cpu_s,
        "fits": [m["fit_s"] for m in metrics],
        "cpu_fits": [m["fit_cpu_s"] for m in metrics],
    }


def sweep_main(args, folder: Path) -> None:
    rows, ratios = [], {"wall": [], "cpu": []}
    for i in range(args.pairs):
        order = (1, args.sweep) if i % 2 == 0 else (args.sweep, 1)
        got = {jobs: run_sweep(args, folder, jobs, i) for jobs in order}
        one, many = got[1], got[args.sweep]
        row = [i + 1]
        for kind, fit_key in (("wall", "fits"), ("cpu", "cpu_fits")):
            trial = (many[kind] - one[kind]) / (args.sweep - 1)
            fit = median(many[fit_key])
            ratios[kind].append(trial / fit)
            row += [f"{one[kind]:.2f}", f"{many[kind]:.2f}", f"{trial:.2f}", f"{fit:.2f}"]
            row.append(f"{trial / fit:.2f}x")
        rows.append(row)
        console.print(f"pair {i + 1}/{args.pairs}: {row[1:]}")
    wall, cpu = median(ratios["wall"]), median(ratios["cpu"])
    rows.append(["median", *[""] * 4, f"{wall:.2f}x", *[""] * 4, f"{cpu:.2f}x"])
    title = (
        f"a trial of `train.py -m` (basic launcher unless overridden): MLP 64->[{args.width}]x"
        f"{args.depth}->10, {args.epochs} epochs, 1 vs {args.sweep} jobs"
    )
    columns = ["pair"]
    for kind in ("wall", "CPU"):
        columns += [f"1-job {kind} s", f"{args.sweep}-job {kind} s", "per trial s"]
        columns += ["fit s", "ratio"]
    caption = (
        f"per trial = ({args.sweep}-job - 1-job sweep) / {args.sweep - 1}, in wall seconds and in "
        "the process's CPU seconds (steadier on a shared machine); fit: metrics.json fit_s / "
        "fit_cpu_s. Overrides: " + (" ".join(args.overrides) or "none")
    )
    console.print(table(title, columns, rows, caption))
    for kind, ratio in (("wall", wall), ("CPU", cpu)):
        ok = ratio <= TARGETS["trial"]
        console.print(f"per trial ({kind}): {ratio:.2f}x its fit (target <= 1.5x) {verdict(ok)}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--pairs", type=int, default=3, help="plain/train.py pairs (default 3)")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--depth", type=int, default=4)
    parser.add_argument("--width", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument(
        "--threads",
        default="1",
        help="torch threads on both sides, passed to train.py as `threads` (default 1, as in "
        "issue 8; `auto` is train.py's own default: every core)",
    )
    parser.add_argument(
        "--sweep", type=int, metavar="N", help="measure a trial of an N-job multirun instead"
    )
    parser.add_argument("--quick", action="store_true", help="1 pair of 3 epochs: a smoke test")
    parser.add_argument("--keep", type=Path, help="keep the run folders here")
    parser.add_argument("--plain", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parser.add_argument("overrides", nargs="*", help="extra train.py overrides, after --")
    args = parser.parse_args()
    if args.plain:
        plain_main(args)
        return
    if args.quick:
        args.pairs, args.epochs = 1, 3
    console.print(load_text())
    with tempfile.TemporaryDirectory(prefix="bench_overhead_") as tmp:
        folder = args.keep or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        if args.sweep:
            if args.sweep < 2:
                raise SystemExit("--sweep: at least 2 jobs")
            sweep_main(args, folder)
            return
        pairs = []
        for i in range(args.pairs):
            order = ("plain", "train") if i % 2 == 0 else ("train", "plain")
            got = {}
            for side in order:
                got[side] = (run_plain if side == "plain" else run_train)(args, folder, i)
                r = got[side]
                console.print(
                    f"pair {i + 1}/{args.pairs} {side:5}: fit {r['fit']:.2f} s, wall "
                    f"{r['wall']:.2f} s, RSS {r['rss']:.0f} MiB, test acc {r['acc']:.4f}"
                )
            pairs.append((got["plain"], got["train"]))
        digest = project_split_digest()
    plain_digests = {p["split"] for p, _ in pairs}
    if any(p["lightning"] for p, _ in pairs):
        console.print("[yellow]warning: the plain loop's process imported lightning[/yellow]")
    report(args, pairs, plain_digests == {digest})


if __name__ == "__main__":
    main()
