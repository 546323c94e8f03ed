"""Where an interrupted run continues from: runs that crash or are killed are not started over."""

import logging
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from deeptune.outputs import METRICS_FILE, read_yaml
from deeptune.run import ddp

log = logging.getLogger(__name__)
LAST = Path("checkpoints") / "last.ckpt"


def resume_point(cfg: DictConfig) -> str | None:
    """The checkpoint this fit continues from: `ckpt_path`, or with `resume=auto` the last.ckpt
    already in the run folder (a SLURM job requeued into its folder, or a run restarted there).
    """
    if cfg.ckpt_path:
        return str(cfg.ckpt_path)
    last = Path(cfg.paths.output_dir) / LAST
    if cfg.resume == "auto" and last.is_file():
        log.warning("resuming from %s (start afresh with resume=never)", last)
        return str(last)
    return None


def interrupted_run(cfg: DictConfig) -> Path | None:
    """Rerunning a killed command continues it: with `resume=auto`, the newest run folder beside
    this one that the same command started and never finished (same overrides, a last.ckpt, no
    metrics.json), so that its checkpoints and logs stay whole. The caller derives the run's
    config for that folder.
    """
    if cfg.ckpt_path or cfg.resume != "auto" or ddp.is_child_rank():
        return None  # a DDP child runs in the folder rank 0 chose
    if not HydraConfig.initialized() or HydraConfig.get().mode == RunMode.MULTIRUN:
        return None  # a sweep's job folders are fixed by the sweep: nothing to look for
    here = Path(cfg.paths.output_dir)
    overrides = list(HydraConfig.get().overrides.task)
    found = []
    for run in here.parent.parent.glob("*/*"):  # outputs/<date>/<time>
        saved = run / ".hydra" / "overrides.yaml"
        lasts = [*run.glob(str(LAST)), *run.glob(f"*/{LAST}")]  # and its folds' or restarts'
        if run == here or (run / METRICS_FILE).exists() or not lasts or not saved.is_file():
            continue
        if read_yaml(saved) == overrides:
            found.append((max(p.stat().st_mtime for p in lasts), run))
    if not found:
        return None
    previous = max(found)[1]
    log.warning(
        "continuing the interrupted run %s; this folder keeps only the log "
        "(start afresh with resume=never)",
        previous,
    )
    return previous
