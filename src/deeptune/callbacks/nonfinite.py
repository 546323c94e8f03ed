"""Stop at the first NaN / inf training loss."""

import math

import lightning as L

from deeptune.errors import TrainingError


class NonFiniteLoss(TrainingError):
    pass


class StopOnNonFiniteLoss(L.Callback):
    """Stop at the first NaN / inf training loss and say why it likely happened.

    Lightning's EarlyStopping(check_finite=True) only looks at the monitored metric at the end
    of an epoch, after every later step has trained on garbage.
    """

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        if loss is None or math.isfinite(loss.item()):
            return
        raise NonFiniteLoss(
            f"the training loss became {loss.item()} at epoch {trainer.current_epoch + 1}, "
            f"step {trainer.global_step} (batch {batch_idx}). Likely causes: a learning rate "
            "too high (lower optimizer.lr), no gradient clipping (trainer.gradient_clip_val=1.0), "
            "or an init that explodes (model.init=normal with depth; try kaiming_* or xavier_*)"
        )
