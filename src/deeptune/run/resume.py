"""Where an interrupted run continues from: runs that crash, are killed or stopped by a signal
are not started over.

A single run continues in its own folder (`interrupted_run`). A multirun stopped by a signal
leaves SWEEP_MARKER in its sweep folder; the same command runs the sweep in that folder again
(hydra_plugins.deeptune_sweeper), where the jobs that had finished are read back
(`finished_job`) and the stopped one continues from its last.ckpt (`resume_point`).
"""

import json
import logging
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.types import Quote, QuotedString
from hydra.types import RunMode
from omegaconf import DictConfig, open_dict

from deeptune import outputs, trust
from deeptune.errors import ConfigError
from deeptune.outputs import read_yaml, run_status
from deeptune.run import ddp

log = logging.getLogger(__name__)
LAST = Path("checkpoints") / "last.ckpt"
SWEEP_MARKER = ".interrupted"  # in a sweep folder: the sweep was stopped by a signal


def resume_point(cfg: DictConfig) -> str | None:
    """The checkpoint this fit continues from: `ckpt_path`, or with `resume=auto` the last.ckpt
    already in the run folder (a SLURM job requeued into its folder, or a run restarted there).
    A last.ckpt that a kill cut short is skipped for the newest readable checkpoint beside it,
    or the run starts afresh, each with a warning.
    """
    if cfg.ckpt_path:
        trust.read_checkpoint(cfg.ckpt_path, "ckpt_path")  # one line if unreadable or refused
        return str(cfg.ckpt_path)
    last = Path(cfg.paths.output_dir) / LAST
    if cfg.resume != "auto" or not last.is_file():
        return None
    others = sorted(last.parent.glob("*.ckpt"), key=lambda p: p.stat().st_mtime, reverse=True)
    for candidate in [last, *(p for p in others if p != last)]:
        try:
            trust.read_checkpoint(candidate, "resume")
        except ConfigError as err:
            log.warning("%s is unreadable: %s", candidate, err.allowed)
            continue
        log.warning("resuming from %s (start afresh with resume=never)", candidate)
        return str(candidate)
    log.warning("no readable checkpoint in %s: the run starts afresh", last.parent)
    return None


def interrupted_run(cfg: DictConfig) -> Path | None:
    """Rerunning a killed command continues it: with `resume=auto`, the newest run folder beside
    this one that the same command started and never finished (same overrides, a last.ckpt, no
    metrics.json), so that its checkpoints and logs stay whole. The caller derives the run's
    config for that folder. A run stopped by a signal (metrics.json status interrupted) is
    unfinished too.
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
        unfinished = run_status(run) in (None, "interrupted")
        if run == here or not unfinished or not lasts or not saved.is_file():
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


def sweep_in(config: DictConfig, folder: Path) -> None:
    """Make a sweep run its jobs in `folder` (a sweeper's config, before it launches any): the
    launcher composes each job's config anew from the hydra overrides, so the folder goes
    there as well as into the sweep's own config, which the multirun's callbacks read too."""
    quoted = QuotedString(text=str(folder), quote=Quote.single).with_quotes()
    with open_dict(config):
        config.hydra.sweep.dir = str(folder)
        config.hydra.overrides.hydra.append(f"hydra.sweep.dir={quoted}")


def finished_job(cfg: DictConfig) -> dict | None:
    """The metrics of this multirun job when it finished before its sweep was stopped and the
    sweep now continues (resume=auto): read back, not fitted again."""
    if cfg.resume != "auto" or not HydraConfig.initialized():
        return None
    hydra = HydraConfig.get()
    if hydra.mode != RunMode.MULTIRUN or not (Path(hydra.sweep.dir) / SWEEP_MARKER).is_file():
        return None
    out_dir = Path(cfg.paths.output_dir)
    if run_status(out_dir) != "completed":
        return None
    log.warning("job %s finished before the sweep was stopped: its metrics are read back", out_dir)
    return json.loads((out_dir / outputs.METRICS_FILE).read_text())


def discard_last(cfg: DictConfig, out_dir: Path) -> None:
    """Remove the completed run's last.ckpt (unless `keep_last`): it exists to resume the run
    if it is interrupted, and a completed run is read back from its metrics.json instead. The
    model the run kept is its best checkpoint. Called once metrics.json says completed, so that
    a run killed before then still continues from it."""
    if cfg.get("keep_last", False) or ddp.is_child_rank():
        return
    (out_dir / LAST).unlink(missing_ok=True)


def record_interruption(cfg: DictConfig, stop) -> None:
    """metrics.json status interrupted in the run folder, unless the fit wrote a fuller one."""
    out_dir = Path(cfg.paths.output_dir)
    if ddp.is_child_rank() or run_status(out_dir) == "interrupted":
        return
    outputs.save_metrics({"status": "interrupted", "signal": stop.name, "seed": cfg.seed}, out_dir)
