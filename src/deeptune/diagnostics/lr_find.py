"""`debug=lr_find`: Lightning's learning-rate range test before training, its suggestion
printed, plotted and (with apply=true) used for the run. metrics.json's `lr_find` entry records
the suggestion and whether the run trained with it; config.yaml stays the config as given."""

import logging
from contextlib import contextmanager
from functools import partial
from pathlib import Path

from lightning.pytorch.callbacks import LearningRateFinder

from deeptune.console import say

log = logging.getLogger(__name__)

PLOT_FILE = "lr_find.png"


class LRFind(LearningRateFinder):
    def __init__(
        self,
        out_dir: str,
        apply: bool = True,
        min_lr: float = 1e-8,
        max_lr: float = 1.0,
        num_training_steps: int = 100,
        mode: str = "exponential",
        early_stop_threshold: float | None = 4.0,
    ):
        # Lightning's update_attr needs an `lr` attribute on the module; the optimiser here is
        # built from the config, so the suggestion is applied below instead.
        super().__init__(
            min_lr, max_lr, num_training_steps, mode, early_stop_threshold, update_attr=False
        )
        self.out_dir, self.apply = Path(out_dir), apply
        self.result: dict = {}

    def on_fit_start(self, trainer, pl_module) -> None:
        if trainer.ckpt_path:  # resuming: the first start already found and applied the rate
            return
        with _bar_on_terminals_only():
            self.lr_find(trainer, pl_module)
        if self.optimal_lr is None:  # fast_dev_run
            return
        suggestion = self.optimal_lr.suggestion()
        self.result = {"suggestion": suggestion, "applied": False, "plot": PLOT_FILE}
        if trainer.is_global_zero:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            fig = self.optimal_lr.plot(suggest=suggestion is not None, show=False)
            fig.savefig(self.out_dir / PLOT_FILE, dpi=110)
            import matplotlib.pyplot as plt  # Lightning's plot is a pyplot figure

            plt.close(fig)
        if suggestion is None:
            log.warning("lr_find: no suggestion (too few points before the loss diverged)")
            return
        if self.apply:
            self._use(trainer, suggestion)
        if trainer.is_global_zero:
            action = (
                "training continues with it (metrics.json: lr_find.applied)"
                if self.apply
                else "set it with optimizer.lr=..."
            )
            say(
                f"lr_find: suggested learning rate {suggestion:.3g} (steepest fall of the loss); "
                f"plot: {self.out_dir / PLOT_FILE}; {action}"
            )

    def _use(self, trainer, lr: float) -> None:
        for optimizer in trainer.optimizers:
            for group in optimizer.param_groups:
                group["lr"] = group["initial_lr"] = lr
        for config in trainer.lr_scheduler_configs:  # schedules scale from their base rate
            if hasattr(config.scheduler, "base_lrs"):
                config.scheduler.base_lrs = [lr] * len(config.scheduler.base_lrs)
        self.result.update(applied=True, lr=float(lr))

    def state_dict(self) -> dict:  # a resumed run keeps the record of the rate it trains with
        return {"result": self.result}

    def load_state_dict(self, state_dict: dict) -> None:
        self.result = state_dict.get("result", {})

    def report(self) -> dict:
        return {"lr_find": self.result} if self.result else {}


@contextmanager
def _bar_on_terminals_only():
    """Lightning's finder always draws a tqdm bar; in a log file its redraws are noise. tqdm's
    own `disable=None` draws it on a terminal only."""
    from lightning.pytorch.tuner import lr_finder

    bar = lr_finder.tqdm
    lr_finder.tqdm = partial(bar, disable=None)
    try:
        yield
    finally:
        lr_finder.tqdm = bar
