"""Stop at the first NaN / inf training loss."""

import lightning as L
import torch

from deeptune.errors import TrainingError


class NonFiniteLoss(TrainingError):
    pass


class StopOnNonFiniteLoss(L.Callback):
    """Stop at the first NaN / inf training loss and say why it likely happened.

    Lightning's EarlyStopping(check_finite=True) only looks at the monitored metric at the end
    of an epoch, after every later step has trained on garbage.

    Reading a loss on the host waits for the device to finish the step (a sync that stalls a
    GPU's queue), so the losses stay on the device and are read together every
    `every_n_batches` batches, at the end of each epoch and before anything looks at the
    weights (validation, a checkpoint): the run stops at most that many batches after the first
    non-finite loss, and names the step where it appeared.
    """

    def __init__(self, every_n_batches: int = 32):
        self.every_n_batches = every_n_batches
        self.window: list[torch.Tensor] = []  # the losses not read yet, detached
        self.where: list[tuple[int, int, int]] = []  # their (epoch, step, batch)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        if loss is None:
            return
        self.window.append(loss.detach())
        self.where.append((trainer.current_epoch, trainer.global_step, batch_idx))
        if len(self.window) >= self.every_n_batches:
            self.check()

    def on_validation_start(self, trainer, pl_module):
        self.check()

    def on_save_checkpoint(self, trainer, pl_module, checkpoint):
        self.check()

    def on_train_epoch_end(self, trainer, pl_module):
        self.check()

    def on_train_end(self, trainer, pl_module):
        self.check()

    def check(self) -> None:
        """Read the window's losses (one sync); raise at the first that is not finite."""
        if not self.window:
            return
        window, where = self.window, self.where
        self.window, self.where = [], []
        finite = torch.isfinite(torch.stack(window))
        if bool(finite.all()):
            return
        first = int((~finite).nonzero()[0])
        epoch, step, batch_idx = where[first]
        raise NonFiniteLoss(
            f"the training loss became {window[first].item()} at epoch {epoch + 1}, "
            f"step {step} (batch {batch_idx}). Likely causes: a learning rate "
            "too high (lower optimizer.lr), no gradient clipping (trainer.gradient_clip_val=1.0), "
            "or an init that explodes (model.init=normal with depth; try kaiming_* or xavier_*)"
        )
