"""`debug=overfit`: can the model fit one small batch? If not, nothing else will work.

Lightning's `overfit_batches` picks the batch and its EarlyStopping (stopping_threshold) ends
the run once the loss is low enough; this callback gives the verdict and the advice.
"""

import lightning as L
from rich.console import Console

ADVICE = (
    "a model that cannot memorise one batch has a bug or a blocked signal: check that the labels "
    "belong to their inputs, raise optimizer.lr (now {lr:g}), train longer (trainer.max_epochs), "
    "make sure gradients reach the first layer (callbacks.grad_health), and switch off "
    "regularisation (model.dropout=0, optimizer.weight_decay=0)"
)


class OverfitCheck(L.Callback):
    def __init__(self, threshold: float = 0.05, monitor: str = "train/loss"):
        self.threshold, self.monitor = threshold, monitor
        self.result: dict = {}

    def on_fit_end(self, trainer, pl_module) -> None:
        loss = trainer.callback_metrics.get(self.monitor)
        loss = float(loss) if loss is not None else float("nan")
        passed = loss < self.threshold
        # a component data module may batch without a `batch_size` attribute
        samples = trainer.overfit_batches * getattr(trainer.datamodule, "batch_size", 1)
        self.result = {
            "passed": passed,
            "final_loss": loss,
            "threshold": self.threshold,
            "epochs": trainer.current_epoch,
            "batches": trainer.overfit_batches,
        }
        if not trainer.is_global_zero:
            return
        where = (
            f"{self.monitor} {loss:.4g} after {trainer.current_epoch} epochs on {samples} samples"
        )
        if passed:
            Console().print(f"[bold green]overfit check: PASS[/] {where} (< {self.threshold:g})")
        else:
            lr = trainer.optimizers[0].param_groups[0]["lr"] if trainer.optimizers else float("nan")
            Console().print(
                f"[bold red]overfit check: FAIL[/] {where} (not < {self.threshold:g}); "
                + ADVICE.format(lr=lr)
            )

    def report(self) -> dict:
        return {"overfit": self.result} if self.result else {}
