"""`hydra/sweeper=deeptune_basic`: Hydra's basic sweeper, and a stopped sweep continues.

A sweep stopped by a signal (SIGTERM, Ctrl-C) leaves a marker in its folder
(deeptune.run.resume.SWEEP_MARKER) with the command's overrides. The same command, run again,
sweeps in that folder instead of a new one: jobs that had finished are read back, the stopped one
continues from its last.ckpt and the rest run (deeptune.run.resume). Hydra's BasicSweeper has no
such hook, so this subclass adds it; the sweep itself is Hydra's.
"""

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.config_store import ConfigStore
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig

from deeptune import outputs, signals
from deeptune.run import resume
from deeptune.run.resume import SWEEP_MARKER

from ._compose_once import ComposedOnce

log = logging.getLogger(__name__)


@dataclass
class ResumableSweeperConf:
    _target_: str = "hydra_plugins.deeptune_basic_sweeper.sweeper.ResumableSweeper"
    max_batch_size: int | None = None  # as Hydra's basic sweeper
    params: dict[str, str] | None = None


ConfigStore.instance().store(
    group="hydra/sweeper", name="deeptune_basic", node=ResumableSweeperConf, provider="deeptune"
)


class ResumableSweeper(BasicSweeper):
    def setup(
        self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig
    ) -> None:
        # The launcher gets the same loader: it takes the configs the up-front check composed.
        loader = ComposedOnce(hydra_context.config_loader)
        hydra_context = HydraContext(config_loader=loader, callbacks=hydra_context.callbacks)
        super().setup(hydra_context=hydra_context, task_function=task_function, config=config)

    def validate_batch_is_legal(self, batch) -> None:
        """Hydra's check (every job composes, before any runs), keeping the configs."""
        for overrides in batch:
            self.hydra_context.config_loader.compose(self.config, list(overrides))

    def sweep(self, arguments: list[str]) -> Any:
        overrides = list(self.config.hydra.overrides.task)
        if (stopped := _stopped_sweep(Path(self.config.hydra.sweep.dir), overrides)) is not None:
            log.warning(
                "continuing the stopped sweep in %s (start afresh with resume=never)", stopped
            )
            resume.sweep_in(self.config, stopped)
        folder = Path(self.config.hydra.sweep.dir)
        try:
            returns = super().sweep(arguments)
        except BaseException as err:
            if signals.stopped(err) is not None:
                marker = {"overrides": overrides, "signal": signals.stopped(err).name}
                outputs.write_atomic(folder / SWEEP_MARKER, json.dumps(marker) + "\n")
            raise
        (folder / SWEEP_MARKER).unlink(missing_ok=True)
        return returns


def _stopped_sweep(here: Path, overrides: list[str]) -> Path | None:
    """The newest sweep folder beside `here` (multirun/<date>/<time>), or `here` itself, that the
    same command started and a signal stopped."""
    found = []
    for folder in {here, *here.parent.parent.glob("*/*")}:
        marker = folder / SWEEP_MARKER
        if marker.is_file() and json.loads(marker.read_text()).get("overrides") == overrides:
            found.append((marker.stat().st_mtime, folder))
    return max(found)[1] if found else None
