"""The LightningModules: a network, its loss, its metrics and its optimiser.

`Classifier` and `Regressor` take their loss and metrics from the task registry
(deeptune.tasks: cross-entropy with acc and f1; MSE with mse and r2), plus the `metrics` group's
(deeptune.metrics), and share everything else,
the optimiser, the schedule, the fine-tuning parameter groups and the random state saved in
checkpoints, through `TaskModule`.
"""

from collections.abc import Callable, Sequence

import lightning as L
import torch
from torch import nn
from torchmetrics import MeanMetric

from deeptune import tasks
from deeptune.metrics import flatten, task_metrics

STAGES = tasks.SPLITS
FLUSH_EVERY = 32  # batches between metric updates: one update costs about a whole small step


class TaskModule(L.LightningModule):
    """Logs {stage}/loss and the task's metrics per epoch; a subclass names its `task`.

    Metrics accumulate in torchmetrics objects and are logged once per epoch: a `self.log`
    call per step costs more than a small model's whole step. For the same reason the metrics
    are updated once per `FLUSH_EVERY` batches, on the batches' outputs concatenated.
    """

    task = ""  # a name in deeptune.tasks.TASKS

    def __init__(
        self,
        net: nn.Module,
        outputs: int,
        optimizer: Callable[..., torch.optim.Optimizer],
        scheduler: Callable[..., object] | None = None,
        scheduler_monitor: str = "val/loss",
        pretrained: Sequence[str] = (),
        lr_scale: float = 1.0,
        compile: bool = False,
        metrics: dict | None = None,
        classes: Sequence[str] = (),
    ):
        super().__init__()
        self.net = net
        self.compile_net = compile  # `model.compile`
        self.outputs = outputs
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self.scheduler_monitor = scheduler_monitor
        self.pretrained, self.lr_scale = set(pretrained), lr_scale  # net parameter names
        self.classes = list(classes)  # names the values of a per-class metric
        metrics = task_metrics(self.task, outputs, metrics)
        # ModuleDict keys may not shadow Module methods such as train(): prefix them.
        self.metrics = nn.ModuleDict({f"_{s}": metrics.clone(prefix=f"{s}/") for s in STAGES})
        self.losses = nn.ModuleDict({f"_{s}": MeanMetric() for s in STAGES})
        self.pending: dict[str, list] = {s: [] for s in STAGES}  # (outputs, y, loss, size)

    def setup(self, stage: str) -> None:
        # In place (nn.Module.compile): the network keeps its class and its state_dict keys, so
        # checkpoints, ensembles and fine-tuning read the same weights.
        if self.compile_net and stage == "fit":
            self.net.compile()

    def teardown(self, stage: str) -> None:
        # Eager again after the fit: the compiled graph would not see a forward hook added
        # later (the t-SNE report's; torch does not guard on hooks), and testing or predicting
        # a few batches is not worth compiling for. torch has no public undo of compile().
        if self.compile_net and stage == "fit":
            self.net._compiled_call_impl = None

    def loss(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return getattr(nn.functional, tasks.task(self.task).loss)(out, y)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def _step(self, batch, stage: str) -> torch.Tensor:
        x, y = batch
        out = self(x)
        loss = self.loss(out, y)
        self.pending[stage].append((out.detach(), y, loss.detach(), len(y)))
        if len(self.pending[stage]) >= FLUSH_EVERY:
            self._flush(stage)
        return loss

    def _flush(self, stage: str) -> None:
        """One torchmetrics update for the batches seen since the last one."""
        if not self.pending[stage]:
            return
        outs, ys, losses, sizes = zip(*self.pending[stage], strict=True)
        self.pending[stage] = []
        losses = torch.stack(losses)
        weights = torch.tensor(sizes, dtype=losses.dtype, device=losses.device)
        self.losses[f"_{stage}"].update(losses, weight=weights)
        self.metrics[f"_{stage}"].update(torch.cat(outs), torch.cat(ys))

    def _log_epoch(self, stage: str) -> None:
        self._flush(stage)
        # torchmetrics' compute() already reduces across DDP ranks.
        values = {
            f"{stage}/loss": self.losses[f"_{stage}"].compute(),
            **flatten(self.metrics[f"_{stage}"].compute(), self.classes, self.outputs),
        }
        self.log_dict(values)
        self.losses[f"_{stage}"].reset()
        self.metrics[f"_{stage}"].reset()

    def training_step(self, batch, batch_idx):
        return self._step(batch, "train")

    def validation_step(self, batch, batch_idx):
        self._step(batch, "val")

    def test_step(self, batch, batch_idx):
        self._step(batch, "test")

    def predict_step(self, batch, batch_idx):
        return self(batch[0])

    def on_train_epoch_end(self):
        self._log_epoch("train")

    def on_validation_epoch_end(self):
        self._log_epoch("val")

    def on_test_epoch_end(self):
        self._log_epoch("test")

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        # Lightning restores weights, optimiser, schedulers and loops but not the random
        # generator that dropout draws from: without it a resumed run would not match.
        checkpoint["torch_rng_state"] = torch.get_rng_state()
        if torch.cuda.is_available():
            checkpoint["cuda_rng_states"] = torch.cuda.get_rng_state_all()

        # What predicting on raw rows needs, so the file stands alone (deeptune.run.portable).
        if (state := getattr(self, "deeptune_state", None)) is not None:
            checkpoint["deeptune"] = state

    @classmethod
    def load_from_checkpoint(cls, checkpoint_path, map_location=None, strict=True, **kwargs):
        """The module of a checkpoint, wherever it lies: the network and the optimiser rebuilt
        from the config the file holds (its targets checked by deeptune.trust), in eval mode.
        Lightning's own would call __init__ with hyper-parameters this module does not save."""
        from deeptune.run.portable import load_module

        model = load_module(checkpoint_path, strict=strict)
        if not isinstance(model, cls):
            raise TypeError(
                f"{checkpoint_path} holds a {type(model).__name__}, not a {cls.__name__}"
            )
        return model.to(map_location) if map_location is not None else model

    def predict(self, x):
        """Class labels or numbers for raw rows (an array, or a DataFrame matched by column
        name), scaled as in training (deeptune.predictor)."""
        from deeptune.predictor import Predictor

        return Predictor([self]).predict(x)

    def predict_proba(self, x):
        from deeptune.predictor import Predictor

        return Predictor([self]).predict_proba(x)

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        if "deeptune" in checkpoint:
            self.deeptune_state = checkpoint["deeptune"]
        if "torch_rng_state" in checkpoint:
            torch.set_rng_state(checkpoint["torch_rng_state"])
        if "cuda_rng_states" in checkpoint and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(checkpoint["cuda_rng_states"])

    def configure_optimizers(self):
        # Frozen parameters stay out: BaseFinetuning adds them as a group when it unfreezes them.
        # Fine-tuning: group 0 is new (the head), group 1 the pretrained layers at lr * lr_scale.
        trainable = [(n, p) for n, p in self.net.named_parameters() if p.requires_grad]
        new = [p for n, p in trainable if n not in self.pretrained]
        old = [p for n, p in trainable if n in self.pretrained]
        if not old:
            optimizer = self.optimizer_factory(new)
        else:
            optimizer = self.optimizer_factory([{"params": new}, {"params": old}])
            optimizer.param_groups[1]["lr"] *= self.lr_scale
        if self.scheduler_factory is None:
            return optimizer
        scheduler = {
            "scheduler": self.scheduler_factory(optimizer),
            "interval": "epoch",
            "monitor": self.scheduler_monitor,  # read by ReduceLROnPlateau only
        }
        return {"optimizer": optimizer, "lr_scheduler": scheduler}


class Classifier(TaskModule):
    """Cross-entropy over `outputs` classes; logs {stage}/loss, {stage}/acc and {stage}/f1."""

    task = "classification"


class Regressor(TaskModule):
    """Mean squared error on one number per sample; logs {stage}/loss (the MSE of the batches,
    averaged), {stage}/mse and {stage}/r2 (the coefficient of determination)."""

    task = "regression"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).squeeze(-1)  # (batch, 1) -> (batch,), the targets' shape


MODULES = {cls.task: cls for cls in (Classifier, Regressor)}


def module_class(task: str) -> type[TaskModule]:
    """The LightningModule for a data set's task (a name in deeptune.tasks.TASKS)."""
    return MODULES[task]
