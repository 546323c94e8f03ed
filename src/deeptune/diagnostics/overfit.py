"""`debug=overfit`: can the model fit one small batch? If not, nothing else will work.

Lightning's `overfit_batches` picks the batch and its EarlyStopping (stopping_threshold) ends
the run once the loss is low enough; this callback measures the verdict, and the run prints it
after its table: PASS, or FAIL with advice, which ends a single run with exit status 1.
"""

import lightning as L
from rich.console import Console

from deeptune.errors import TrainingError

ADVICE = (
    "a model that cannot memorise one batch has a bug or a blocked signal: check that the labels "
    "belong to their inputs, raise optimizer.lr (now {lr:g}), train longer (trainer.max_epochs), "
    "make sure gradients reach the first layer (callbacks.grad_health), and switch off "
    "regularisation (model.dropout=0, optimizer.weight_decay=0)"
)


class OverfitFailed(TrainingError):
    """`debug=overfit` ended in FAIL: the message is the verdict and its advice."""


class OverfitCheck(L.Callback):
    """Measures the verdict at the end of the fit; the run says it (`say`, after the table)."""

    def __init__(self, threshold: float = 0.05, monitor: str = "train/loss"):
        self.threshold, self.monitor = threshold, monitor
        self.result: dict = {}

    def on_fit_end(self, trainer, pl_module) -> None:
        loss = trainer.callback_metrics.get(self.monitor)
        loss = float(loss) if loss is not None else float("nan")
        lr = trainer.optimizers[0].param_groups[0]["lr"] if trainer.optimizers else float("nan")
        self.result = {
            "passed": loss < self.threshold,
            "final_loss": loss,
            "threshold": self.threshold,
            "epochs": trainer.current_epoch,
            "batches": trainer.overfit_batches,
            # a component data module may batch without a `batch_size` attribute
            "samples": trainer.overfit_batches * getattr(trainer.datamodule, "batch_size", 1),
            "monitor": self.monitor,
            "lr": lr,
        }

    def report(self) -> dict:
        return {"overfit": self.result} if self.result else {}


def verdict(result: dict) -> str:
    """PASS or FAIL in one line, with the advice for a FAIL."""
    where = (
        f"{result['monitor']} {result['final_loss']:.4g} after {result['epochs']} epochs "
        f"on {result['samples']} samples"
    )
    if result["passed"]:
        return f"overfit check: PASS {where} (< {result['threshold']:g})"
    return f"overfit check: FAIL {where} (not < {result['threshold']:g}); " + ADVICE.format(
        lr=result["lr"]
    )


def say_verdict(result: dict, fail_raises: bool) -> None:
    """Print the verdict; a FAIL raises OverfitFailed instead when `fail_raises` (a single run:
    its one line is the error, and the exit status is 1, for scripts and CI)."""
    text = verdict(result)
    if not result["passed"] and fail_raises:
        raise OverfitFailed(text)
    colour = "green" if result["passed"] else "red"
    word = "PASS" if result["passed"] else "FAIL"
    Console(soft_wrap=True).print(text.replace(word, f"[bold {colour}]{word}[/]", 1))
