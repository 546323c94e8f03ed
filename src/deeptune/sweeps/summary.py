"""The answer a multirun ends with: its best jobs, the folder's size and where the full report is.

`SweepSummary` is a Hydra callback, registered in configs/hydra/default.yaml
(`hydra.callbacks.sweep_summary`). Hydra calls `on_multirun_end` in the process that started
the sweep once every job has returned, whatever the sweeper (deeptune_basic, basic, optuna) and
the launcher (basic, joblib, submitit's SLURM). The folder is read as `deeptune-report` reads it
(deeptune.sweeps.report.load), and ranked the same way.

Hydra builds its callbacks at every start, a single run's included: this module imports the
report (pandas, scipy) only when a multirun ends.
"""

import logging
import shlex
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

log = logging.getLogger(__name__)


class SweepSummary(Callback):
    def __init__(self, top: int = 5) -> None:
        self.top = top  # jobs (or configurations over seeds) listed

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        if "optimized_metric" not in config:  # eval.py / predict.py -m: nothing to rank by
            return
        folder = Path(config.hydra.sweep.dir)  # a continued sweep's: its sweeper set it so
        try:
            print_summary(folder, self.top)
        except Exception as err:  # every job has run: a summary that fails must not fail them
            report = f"deeptune-report {shlex.quote(str(folder))}"
            log.warning("no sweep summary (%s: %s); %s", type(err).__name__, err, report)


def print_summary(folder: Path, top: int = 5) -> None:
    """The best `top` jobs by optimized_metric (by their mean over seeds where a configuration
    ran with several), the job counts, the folder's size and the report's command."""
    from deeptune.sweeps import report

    folder = Path(folder)
    sweep = report.load(folder)
    counts = sweep.df["state"].value_counts().to_dict()
    order = [s for s in ("completed", "pruned", "failed") if s in counts] + sorted(counts)
    states = ", ".join(f"{s} {counts[s]}" for s in dict.fromkeys(order))
    size = human_size(folder_size(folder))
    lines = [f"sweep: {len(sweep.df)} jobs ({states}), {size} in {folder}"]
    agg = report.aggregate(sweep.df, sweep.varied, sweep.direction)
    lines.append(report.best_table(sweep, agg, top))
    if (front := report.pareto_front(sweep.results, sweep.varied)) is not None:
        lines.append(f"Pareto front: trials {', '.join(map(str, front['job']))}")
    lines += filter(
        None, [report.continuing(sweep.df, sweep.study), report.elsewhere(sweep.df, sweep.study)]
    )
    lines.append(f"full report (report.md, plots): deeptune-report {shlex.quote(str(folder))}")
    report.print_lines(lines)


def folder_size(folder: Path) -> int:
    """Bytes in the files under `folder` (links not followed)."""
    return sum(p.lstat().st_size for p in Path(folder).rglob("*") if p.is_file())


def human_size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")
