"""The printed summary of a run: the final metrics per split, and the spread over the folds or
the restarts (with the ensemble's figures) when the run had several parts."""

from pathlib import Path

from deeptune.outputs import metric_names
from deeptune.tasks import SPLITS, display_order

WIDE = 5  # metrics shown as columns; more (the `metrics` group's, per class) become rows


def print_summary(title: str, metrics: dict, out_dir: Path) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title, show_header=True, header_style="bold")
    names = metric_names(metrics)
    splits = [s for s in SPLITS if metrics.get(s)]
    cell = {(s, n): _cell(metrics[s], n) for s in splits for n in names}
    if len(names) <= WIDE:  # a row per split
        table.add_column("split")
        for name in names:
            table.add_column(name, justify="right")
        for split in splits:
            table.add_row(split, *(cell[split, n] for n in names))
    else:  # more metrics than a terminal's width shows as columns: a row per metric
        table.add_column("metric")
        for split in splits:
            table.add_column(split, justify="right")
        for name in names:
            table.add_row(name, *(cell[s, name] for s in splits))
    console = Console(stderr=False)
    console.print(table)
    for kind in ("cv", "restarts"):
        if spread := metrics.get(kind):
            console.print(spread_table(spread))
    if (ensemble := metrics.get("ensemble")) and "restarts" in metrics:
        console.print(ensemble_table(ensemble))
    shown = ("best_epoch", "epochs", "n_params", "duration_s")
    extras = {k: metrics[k] for k in shown if k in metrics}
    if extras:
        console.print("  ".join(f"{k}: {v}" for k, v in extras.items()))
    console.print(f"run folder: {out_dir}", highlight=False, soft_wrap=True)
    if sync := wandb_sync_command(out_dir):
        console.print(f"W&B logged offline; upload with: {sync}", highlight=False, soft_wrap=True)


def wandb_sync_command(out_dir: Path) -> str | None:
    """`wandb sync ...` for the W&B runs this run wrote offline (its parts' too), or None."""
    if list(out_dir.glob("wandb/offline-run-*")):
        return f"wandb sync {out_dir}/wandb/offline-run-*"
    if list(out_dir.glob("*/wandb/offline-run-*")):  # restarts or folds, one W&B run each
        return f"wandb sync {out_dir}/*/wandb/offline-run-*"
    return None


def spread_table(spread: dict):
    """Mean ± std, 95% CI, min and max over the parts, per metric."""
    from rich.table import Table

    if "folds" in spread:
        title = f"{spread['folds']}-fold cross-validation (the test split is the same for all)"
    else:
        how = ", batched" if spread.get("backend") == "batched" else ""
        title = f"{spread['n']} restarts{how} (seeds {spread['seeds']})"
    table = Table(title=title, header_style="bold")
    for name in ("metric", "mean ± std", "95% CI", "min", "max"):
        table.add_column(name, justify="left" if name == "metric" else "right")
    for split in ("val", "test"):
        figures = spread.get(split, {})
        for name in display_order(figures):
            s = figures[name]
            lo, hi = s["ci95"]
            table.add_row(
                f"{split}/{name}",
                f"{s['mean']:.4f} ± {s['std']:.4f}",
                f"[{lo:.4f}, {hi:.4f}]",
                f"{s['min']:.4f}",
                f"{s['max']:.4f}",
            )
    return table


def ensemble_table(ensemble: dict):
    """The ensemble of the restarts' best checkpoints: a row per metric, a column per split."""
    from rich.table import Table

    title = f"ensemble ({ensemble['method']})"
    table = Table(title=title, header_style="bold")
    splits = [s for s in ("val", "test") if ensemble.get(s)]
    table.add_column("metric")
    for split in splits:
        table.add_column(split, justify="right")
    for name in display_order(n for s in splits for n in ensemble[s]):
        table.add_row(name, *(_cell(ensemble[s], name) for s in splits))
    return table


def _cell(row: dict, name: str) -> str:
    return f"{row[name]:.4f}" if name in row else "-"
