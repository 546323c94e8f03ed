"""A trial's side of Optuna pruning: report the metric each epoch, stop when the pruner says so.

hydra/sweeper=optuna runs every trial with optuna.storage, optuna.study_name and optuna.trial
set (deeptune.sweeps.study); `optuna_pruning` then opens the trial. Stopping raises
optuna.TrialPruned, which the run records in metrics.json ("status": "pruned") and the sweeper
in the study.
"""

import optuna
from lightning.pytorch.callbacks import Callback

from deeptune.errors import ConfigError
from deeptune.sweeps.study import open_trial


class OptunaPruning(Callback):
    def __init__(self, trial: optuna.Trial, monitor: str):
        self.trial, self.monitor = trial, monitor

    @property
    def _train_metric(self) -> bool:
        return self.monitor.startswith("train/")

    def on_validation_end(self, trainer, pl_module) -> None:
        # Only the fit's epochs: the evaluations after it (the kept checkpoint on val, the
        # train split of a run resumed past its last epoch) are not steps of the curve.
        fitting = trainer.state.fn == "fit"
        if fitting and not trainer.sanity_checking and not self._train_metric:
            self._report(trainer, trainer.current_epoch)

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        # Training metrics are logged at the end of the epoch, after the callbacks' own
        # on_train_epoch_end, so the last epoch's value is reported when the next one starts.
        if self._train_metric and trainer.current_epoch > 0:
            self._report(trainer, trainer.current_epoch - 1)

    def _report(self, trainer, epoch: int) -> None:
        value = trainer.callback_metrics.get(self.monitor)
        if value is None:
            return
        value, prune = float(value), False
        if trainer.is_global_zero:  # one process writes to the study
            self.trial.report(value, step=epoch)
            prune = self.trial.should_prune()
        # Under DDP every rank must stop together, or the others would wait forever at the
        # next collective: rank 0's decision is broadcast (a no-op in a single process).
        if trainer.strategy.broadcast(prune, src=0):
            raise optuna.TrialPruned(f"pruned at epoch {epoch} ({self.monitor}={value:.4f})")


def optuna_pruning(
    storage: str | None = None,
    study_name: str | None = None,
    trial: int | None = None,
    monitor: str = "val/acc",
) -> OptunaPruning | None:
    """The callback of a trial of hydra/sweeper=optuna (the `optuna.*` keys), or None outside
    such a sweep and in a multi-objective study (Optuna prunes single-objective studies only)."""
    if trial is None:
        return None
    try:
        opened = open_trial(storage, study_name, int(trial))
    except KeyError:
        raise ConfigError(
            "optuna.trial",
            trial,
            f"no such trial in study {study_name!r} at {storage} "
            "(hydra/sweeper=optuna sets the optuna.* keys; leave them null otherwise)",
        ) from None
    return OptunaPruning(opened, monitor) if len(opened.study.directions) == 1 else None
