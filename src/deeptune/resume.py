"""Where an interrupted run continues from: runs that crash or are killed are not started over."""

import logging
from pathlib import Path

import yaml
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from deeptune import ddp

log = logging.getLogger(__name__)
LAST = Path("checkpoints") / "last.ckpt"


def resume_point(cfg: DictConfig) -> str | None:
    """The checkpoint this fit continues from: `ckpt_path`, or with `resume=auto` the last.ckpt
    already in the run folder (a SLURM job requeued into its folder, or a run restarted there).
    """
    if cfg.get("ckpt_path"):
        return str(cfg.ckpt_path)
    last = Path(cfg.paths.output_dir) / LAST
    if cfg.get("resume", "never") == "auto" and last.is_file():
        log.warning("resuming from %s (start afresh with resume=never)", last)
        return str(last)
    return None


def adopt_interrupted_run(cfg: DictConfig) -> None:
    """Rerunning a killed command continues it: with `resume=auto`, move this run into the
    newest run folder beside it that the same command started and never finished (same
    overrides, a last.ckpt, no metrics.json), so its checkpoints and logs stay whole.
    """
    if cfg.get("ckpt_path") or cfg.get("resume", "never") != "auto" or ddp.is_child_rank():
        return  # a DDP child runs in the folder rank 0 chose
    if not HydraConfig.initialized() or HydraConfig.get().mode == RunMode.MULTIRUN:
        return  # a sweep's job folders are fixed by the sweep: nothing to look for
    here = Path(cfg.paths.output_dir)
    overrides = list(HydraConfig.get().overrides.task)
    found = []
    for run in here.parent.parent.glob("*/*"):  # outputs/<date>/<time>
        saved = run / ".hydra" / "overrides.yaml"
        lasts = [*run.glob(str(LAST)), *run.glob(f"fold_*/{LAST}")]  # cross-validation folds
        if run == here or (run / "metrics.json").exists() or not lasts or not saved.is_file():
            continue
        if yaml.safe_load(saved.read_text()) == overrides:
            found.append((max(p.stat().st_mtime for p in lasts), run))
    if found:
        previous = max(found)[1]
        cfg.paths.output_dir = str(previous)  # checkpoints, logs and metrics.json go there
        log.warning(
            "continuing the interrupted run %s; this folder keeps only the log "
            "(start afresh with resume=never)",
            previous,
        )
