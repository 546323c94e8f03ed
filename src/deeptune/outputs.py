"""What a run leaves behind: its resolved config, metrics.json and a printed summary."""

import json
import os
from pathlib import Path

from omegaconf import DictConfig, OmegaConf
from rich.console import Console
from rich.table import Table

RESOLVED_CONFIG = "config.yaml"
METRICS_FILE = "metrics.json"


def write_atomic(path: Path, text: str) -> None:
    """Write to a temporary file and rename: a killed run never leaves half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def save_config(cfg: DictConfig, out_dir: Path) -> None:
    """The config with every interpolation resolved (Hydra's .hydra/config.yaml keeps them)."""
    resolved = OmegaConf.to_container(cfg, resolve=True)
    write_atomic(out_dir / RESOLVED_CONFIG, OmegaConf.to_yaml(OmegaConf.create(resolved)))


def save_metrics(metrics: dict, out_dir: Path) -> Path:
    path = out_dir / METRICS_FILE
    write_atomic(path, json.dumps(metrics, indent=2, sort_keys=True) + "\n")
    return path


def metric_names(metrics: dict) -> list[str]:
    """The metrics of a run's splits in display order: the task's own (acc, f1 or mse, r2), then
    the loss; the first is the headline figure."""
    names = {n for split in ("train", "val", "test") for n in metrics.get(split) or {}}
    return sorted(names, key=lambda n: (n == "loss", n))


def print_summary(title: str, metrics: dict, out_dir: Path) -> None:
    table = Table(title=title, show_header=True, header_style="bold")
    table.add_column("split")
    names = metric_names(metrics)
    for name in names:
        table.add_column(name, justify="right")
    for split in ("train", "val", "test"):
        if row := metrics.get(split):
            table.add_row(split, *(f"{row[n]:.4f}" if n in row else "-" for n in names))
    console = Console(stderr=False)
    console.print(table)
    if (cv := metrics.get("cv")) and names:
        name = names[0]
        spread = "  ".join(
            f"{split}/{name} {cv[split][name]['mean']:.4f} ± {cv[split][name]['std']:.4f}"
            for split in ("val", "test")
            if name in cv.get(split, {})
        )
        console.print(f"{cv['folds']}-fold cross-validation (mean ± std over folds): {spread}")
    if restarts := metrics.get("restarts"):
        console.print(restarts_table(restarts, metrics.get("ensemble")))
    extras = {k: metrics[k] for k in ("best_epoch", "epochs", "duration_s") if k in metrics}
    if extras:
        console.print("  ".join(f"{k}: {v}" for k, v in extras.items()))
    console.print(f"run folder: {out_dir}")


def restarts_table(restarts: dict, ensemble: dict | None) -> Table:
    """Mean ± std, 95% CI, min and max over the seeds; the ensemble's figures below them."""
    table = Table(
        title=f"{restarts['n']} restarts (seeds {restarts['seeds']})", header_style="bold"
    )
    for name in ("metric", "mean ± std", "95% CI", "min", "max"):
        table.add_column(name, justify="left" if name == "metric" else "right")
    for split in ("val", "test"):
        for name, s in restarts.get(split, {}).items():
            lo, hi = s["ci95"]
            table.add_row(
                f"{split}/{name}",
                f"{s['mean']:.4f} ± {s['std']:.4f}",
                f"[{lo:.4f}, {hi:.4f}]",
                f"{s['min']:.4f}",
                f"{s['max']:.4f}",
            )
    for split in ("val", "test") if ensemble else ():
        for name, value in ensemble.get(split, {}).items():
            table.add_row(f"ensemble {split}/{name}", f"{value:.4f}")
    if ensemble:
        table.caption = f"ensemble: {ensemble['method']} of the restarts' best checkpoints"
    return table


def split_metrics(values: dict) -> dict[str, dict[str, float]]:
    """{'val/acc': t, ...} -> {'val': {'acc': 0.97}, ...}"""
    out: dict[str, dict[str, float]] = {}
    for key, value in values.items():
        split, _, name = key.partition("/")
        if name and split in ("train", "val", "test"):
            out.setdefault(split, {})[name] = float(value)
    return out
