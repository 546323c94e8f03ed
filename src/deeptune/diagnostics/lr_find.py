"""`debug=lr_find`: Lightning's learning-rate range test before training, its suggestion
printed, plotted and (with apply=true) used for the run and written into its config.yaml."""

import logging
from pathlib import Path

from lightning.pytorch.callbacks import LearningRateFinder
from omegaconf import OmegaConf

from deeptune.outputs import RESOLVED_CONFIG, write_atomic

log = logging.getLogger(__name__)

PLOT_FILE = "lr_find.png"


class LRFind(LearningRateFinder):
    def __init__(self, out_dir: str, apply: bool = True, **kwargs):
        # Lightning's update_attr needs an `lr` attribute on the module; the optimiser here is
        # built from the config, so the suggestion is applied below instead.
        super().__init__(update_attr=False, **kwargs)
        self.out_dir, self.apply = Path(out_dir), apply
        self.result: dict = {}

    def on_fit_start(self, trainer, pl_module) -> None:
        if trainer.ckpt_path:  # resuming: the first start already found and applied the rate
            return
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
                "training continues with it (written to config.yaml as optimizer.lr)"
                if self.apply
                else "set it with optimizer.lr=..."
            )
            log.warning(
                "lr_find: suggested learning rate %.3g (steepest fall of the loss); plot: %s; %s",
                suggestion,
                self.out_dir / PLOT_FILE,
                action,
            )

    def _use(self, trainer, lr: float) -> None:
        for optimizer in trainer.optimizers:
            for group in optimizer.param_groups:
                group["lr"] = group["initial_lr"] = lr
        for config in trainer.lr_scheduler_configs:  # schedules scale from their base rate
            if hasattr(config.scheduler, "base_lrs"):
                config.scheduler.base_lrs = [lr] * len(config.scheduler.base_lrs)
        self.result["applied"] = True
        path = self.out_dir / RESOLVED_CONFIG
        if trainer.is_global_zero and path.is_file():
            cfg = OmegaConf.load(path)
            cfg.optimizer.lr = float(lr)
            write_atomic(path, OmegaConf.to_yaml(cfg))

    def report(self) -> dict:
        return {"lr_find": self.result} if self.result else {}
