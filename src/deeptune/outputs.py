"""What a run leaves behind, written and read in one place: its resolved config (config.yaml),
its metrics.json, Hydra's record of the command (.hydra/), and the way every reader loads them.

Nothing here imports torch: the sweep report and the lab read run folders with it offline.
"""

import json
import os
from pathlib import Path

import yaml
from omegaconf import DictConfig, OmegaConf

from deeptune import tasks

RESOLVED_CONFIG = "config.yaml"
METRICS_FILE = "metrics.json"
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # the C loader is ~10x faster


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


def run_status(folder: Path) -> str | None:
    """completed, failed, pruned or interrupted, from the folder's metrics.json; None before it
    has one. Records written before runs had a status are completed runs."""
    path = Path(folder) / METRICS_FILE
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text())
    except ValueError:  # cut off by a kill before write_atomic existed: not a finished run
        return None
    return record.get("status", "completed") if isinstance(record, dict) else None


def read_yaml(path: Path):
    return yaml.load(Path(path).read_text(), Loader=_Loader)


def read_run(folder: Path) -> dict:
    """A run folder's records, whatever state it is in: `config` (config.yaml, or Hydra's copy
    when the run failed before writing it; {} if neither), `metrics` (None before it finished),
    `overrides` (the command line's, a list) and `choices` (each config group's choice)."""
    folder = Path(folder)
    config = next(
        (p for p in (folder / RESOLVED_CONFIG, folder / ".hydra" / "config.yaml") if p.is_file()),
        None,
    )
    metrics, overrides, hydra = folder / METRICS_FILE, folder / ".hydra" / "overrides.yaml", {}
    if (folder / ".hydra" / "hydra.yaml").is_file():
        hydra = read_yaml(folder / ".hydra" / "hydra.yaml") or {}
    choices = hydra.get("hydra", {}).get("runtime", {}).get("choices", {})
    return {
        "config": (read_yaml(config) if config else None) or {},
        "metrics": json.loads(metrics.read_text()) if metrics.is_file() else None,
        "overrides": (read_yaml(overrides) if overrides.is_file() else None) or [],
        "choices": {k: v for k, v in choices.items() if "/" not in k and k != "hydra"},
    }


def metric_names(metrics: dict) -> list[str]:
    """The metrics of a run's splits in display order: the task's own (acc, f1 or mse, r2), then
    the loss; the first is the headline figure."""
    return tasks.display_order(n for split in tasks.SPLITS for n in metrics.get(split) or {})


def split_metrics(values: dict) -> dict[str, dict[str, float]]:
    """{'val/acc': t, ...} -> {'val': {'acc': 0.97}, ...}"""
    out: dict[str, dict[str, float]] = {}
    for key, value in values.items():
        split, _, name = key.partition("/")
        if name and split in tasks.SPLITS:
            out.setdefault(split, {})[name] = float(value)
    return out
