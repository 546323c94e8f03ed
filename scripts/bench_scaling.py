"""Time per epoch against width, depth and batch size, on the digits, on this machine's CPU.

    python scripts/bench_scaling.py [--epochs 5] [--widths 64,...,2048] [--depths 1,...,32]
        [--batch-sizes 8,...,2048] [--threads 1] [--defaults] [--markdown] [--quick]

Each point trains in this process through deeptune's own builders (the composed train config,
the TensorDataModule, the Classifier, the Trainer), one variable changed from the defaults
(a 2 x 128 ReLU MLP, batch 64). A callback times every epoch (training plus validation) and
the validation loop alone; the table shows the median of the epochs after the first, so
process start-up, imports and the first epoch's warm-up are left out. By default no logger and
no callbacks run (the network's own cost); `--defaults` keeps the default callbacks (minus
early stopping) and the CSV logger. `--markdown` prints the tables for README.md.
"""

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _bench import console, load_text, table  # noqa: E402

WIDTHS = "64,128,256,512,1024,2048"
DEPTHS = "1,2,4,8,16,32"
BATCH_SIZES = "8,16,32,64,128,256,512,1024,2048"


def epoch_timer():
    import lightning as L

    class EpochTimer(L.Callback):
        """Wall time of each training epoch (its validation included) and of each validation."""

        def __init__(self):
            self.epochs, self.val, self.steps = [], [], 0

        def on_train_epoch_start(self, trainer, pl_module):
            self._epoch = time.perf_counter()

        def on_validation_epoch_start(self, trainer, pl_module):
            self._val = time.perf_counter()

        def on_validation_epoch_end(self, trainer, pl_module):
            self.val.append(time.perf_counter() - self._val)

        def on_train_epoch_end(self, trainer, pl_module):  # after that epoch's validation
            self.epochs.append(time.perf_counter() - self._epoch)
            self.steps = trainer.num_training_batches

    return EpochTimer()


def measure(overrides: list[str], args, table_, folder: Path) -> dict:
    import lightning as L
    from hydra import compose, initialize_config_dir
    from omegaconf import open_dict

    from deeptune import builders
    from deeptune.config import CONFIG_DIR, validate

    base = [f"trainer.max_epochs={args.epochs}"]
    if args.defaults:
        base += ["logger=csv", "~callbacks.early_stopping"]
    else:
        base += [
            "logger=none",
            "callbacks=none",
            "+trainer.enable_progress_bar=false",
            "+trainer.enable_model_summary=false",
            "+trainer.enable_checkpointing=false",
        ]
    with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
        cfg = compose("train", overrides=[*base, *overrides])
    with open_dict(cfg):  # Hydra's runtime, which these refer to, is not set by compose
        cfg.paths.output_dir = str(folder / "_".join(o.replace("=", "") for o in overrides))
        cfg.paths.root_dir = str(folder)
    validate(cfg)
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    datamodule = builders.datamodule(cfg, table_)
    model = builders.module(cfg, datamodule)
    loggers = list(builders.loggers(cfg).values())
    timer = epoch_timer()
    callbacks = [*builders.callbacks(cfg, has_logger=bool(loggers)).values(), timer]
    trainer = builders.trainer(cfg, callbacks=callbacks, logger=loggers or False)
    trainer.fit(model, datamodule=datamodule)
    kept = timer.epochs[1:] or timer.epochs
    kept_val = timer.val[1:] or timer.val
    epoch, val = statistics.median(kept), statistics.median(kept_val)
    return {
        "params": sum(p.numel() for p in model.parameters()),
        "steps": timer.steps,
        "epoch_ms": 1000 * epoch,
        "val_ms": 1000 * val,
        "step_ms": 1000 * (epoch - val) / max(timer.steps, 1),
    }


def fmt_params(n: int) -> str:
    return f"{n / 1e6:.2f} M" if n >= 1e6 else f"{n / 1e3:.1f} K"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--epochs", type=int, default=5, help="per point; the first is dropped")
    parser.add_argument("--widths", default=WIDTHS)
    parser.add_argument("--depths", default=DEPTHS)
    parser.add_argument("--batch-sizes", default=BATCH_SIZES)
    parser.add_argument(
        "--threads",
        default="1",
        help="torch threads (train.py's `threads`; default 1: on a shared 2-core machine a second "
        "OpenMP thread waits for a busy core and makes small models many times slower)",
    )
    parser.add_argument(
        "--defaults", action="store_true", help="keep the default callbacks and a CSV logger"
    )
    parser.add_argument("--markdown", action="store_true", help="also print Markdown tables")
    parser.add_argument("--quick", action="store_true", help="2 epochs, 2 points per table")
    args = parser.parse_args()
    if args.quick:
        args.epochs, args.widths, args.depths, args.batch_sizes = 2, "64,256", "1,4", "32,256"
    console.print(load_text())

    import logging
    import warnings

    from deeptune import builders
    from deeptune.cli import quiet_libraries
    from deeptune.config import CONFIG_DIR
    from deeptune.threads import apply_threads

    quiet_libraries()
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore")
    apply_threads(args.threads)
    import torch
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
        defaults = compose("train")
    data = builders.source(defaults)  # the digits, loaded once
    depth, width, batch = defaults.model.depth, defaults.model.width, defaults.data.batch_size
    sweeps = [
        ("model.width", args.widths, f"depth {depth}, batch {batch}"),
        ("model.depth", args.depths, f"width {width}, batch {batch}"),
        ("data.batch_size", args.batch_sizes, f"{depth} x {width} MLP"),
    ]
    setting = "default callbacks + CSV logger" if args.defaults else "no logger, no callbacks"
    threads = torch.get_num_threads()
    results = {}
    with tempfile.TemporaryDirectory(prefix="bench_scaling_") as tmp:
        for key, values, fixed in sweeps:
            rows = []
            for value in values.split(","):
                r = measure([f"{key}={value}"], args, data, Path(tmp))
                rows.append([value, fmt_params(r["params"]), r["steps"], r])
                console.print(
                    f"{key}={value}: {r['epoch_ms']:.1f} ms/epoch, {r['step_ms']:.2f} ms/step",
                    highlight=False,
                )
            results[key] = (fixed, rows)

    cpu = os.cpu_count()
    for key, (fixed, rows) in results.items():
        title = (
            f"time per epoch vs {key} ({fixed}; {setting}; {threads} torch thread(s), "
            f"{cpu} CPU cores; median of epochs 2..{args.epochs})"
        )
        columns = [key, "params", "steps/epoch", "ms/epoch", "ms/train step", "val ms"]
        console.print(
            table(
                title,
                columns,
                [
                    [v, p, s, f"{r['epoch_ms']:.1f}", f"{r['step_ms']:.2f}", f"{r['val_ms']:.1f}"]
                    for v, p, s, r in rows
                ],
            )
        )
    if args.markdown:
        print()
        for key, (fixed, rows) in results.items():
            print(f"Time per epoch vs `{key}` ({fixed}):\n")
            print(f"| `{key}` | params | steps/epoch | ms/epoch | ms/train step |")
            print("|---:|---:|---:|---:|---:|")
            for v, p, s, r in rows:
                print(f"| {v} | {p} | {s} | {r['epoch_ms']:.1f} | {r['step_ms']:.2f} |")
            print()
        print(
            f"Measured with `python scripts/bench_scaling.py` ({setting}, {threads} torch "
            f"thread(s) on {cpu} CPU cores; training plus validation, median of epochs "
            f"2..{args.epochs})."
        )


if __name__ == "__main__":
    main()
