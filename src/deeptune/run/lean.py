"""`loop: lean`: Lightning's training loop with each batch's step done directly.

For a small network a training step costs less than Lightning's machinery around it (about
1 ms a batch on a 2-core CPU: the automatic-optimisation closure, four wrapper layers around
the backward and the optimiser step, and each hook dispatched to every callback under the
profiler, whose label is each callback's `state_key`, rebuilt on every call). `LeanEpochLoop`
replaces only the body of one batch (`_TrainingEpochLoop.advance`): the loop around it stays
Lightning's (progress counters and so `trainer.global_step`, validation at
`val_check_interval`, `max_steps`, `limit_train_batches`, `trainer.should_stop`, the
schedulers of both intervals, the logger connector, SIGTERM, checkpoint state and restarts).

The body makes the same calls in the same order as Lightning's automatic optimisation:
`training_step`, `on_before_zero_grad` and `zero_grad` on the first batch of an
accumulation, the loss over `accumulate_grad_batches`, `on_before_backward`, `backward`,
`on_after_backward`, then inside the optimiser's `step(closure)` (L-BFGS calls it several
times) `on_before_optimizer_step` and the trainer's gradient clipping, so a seeded run trains
the same weights and its callbacks see the same steps. A hook is called on the callbacks that
override it (the base class's are no-ops), directly.

Why not the other design (one Lightning batch per epoch, manual optimisation in the module):
Lightning would still call every callback's batch hooks, once per epoch, with the epoch for a
batch, refuse `gradient_clip_val`, and count steps, validation intervals and `max_steps`
differently; here all of it stays Lightning's own.

Where the body would differ from Lightning's, `loop: auto` keeps Lightning's loop and an
explicit `loop: lean` is refused naming the key (`blocker`): data that is not the in-memory
tensors, a strategy other than one device, a precision other than 32-true (autocast, scalers),
a profiler (it times Lightning's own hooks), a module that overrides a step hook, a tuner
callback (it drives the fit loop itself). It relies on Lightning's private loop classes
(lightning >= 2.4, < 2.7, pinned in pyproject.toml); tests/test_lean_step.py holds the two
loops' metrics equal.
"""

import torch
from lightning.pytorch import Callback, LightningDataModule, LightningModule
from lightning.pytorch.loops.fetchers import _DataLoaderIterDataFetcher
from lightning.pytorch.loops.training_epoch_loop import _TrainingEpochLoop
from lightning.pytorch.utilities.model_helpers import is_overridden

from deeptune.errors import ConfigError

LOOPS = ("auto", "lean", "lightning")

# The hooks one training batch calls, on the callbacks and the module.
BATCH_HOOKS = (
    "on_train_batch_start",
    "on_before_zero_grad",
    "on_before_backward",
    "on_after_backward",
    "on_before_optimizer_step",
    "on_train_batch_end",
)
# Module hooks whose override changes what a step does: Lightning's loop runs them.
STEP_HOOKS = (
    *BATCH_HOOKS,
    "optimizer_step",
    "optimizer_zero_grad",
    "backward",
    "configure_gradient_clipping",
    "on_before_batch_transfer",
    "transfer_batch_to_device",
    "on_after_batch_transfer",
)


class LeanEpochLoop(_TrainingEpochLoop):
    """Lightning's training epoch loop; a batch's step without its wrappers (module doc)."""

    def on_run_start(self, data_fetcher) -> None:
        super().on_run_start(data_fetcher)
        # Per epoch: the tuner callbacks add and remove callbacks between fit loop runs.
        callbacks = self.trainer.callbacks
        self.hooks = {
            name: [getattr(c, name) for c in callbacks if is_overridden(name, c, Callback)]
            for name in BATCH_HOOKS
        }

    def _call(self, name: str, *args) -> None:
        """`call._call_callback_hooks` for the callbacks that override `name`."""
        if not (fns := self.hooks[name]):
            return
        trainer = self.trainer
        module = trainer.lightning_module
        previous, module._current_fx_name = module._current_fx_name, name  # for self.log
        for fn in fns:
            fn(trainer, module, *args)
        module._current_fx_name = previous

    def advance(self, data_fetcher) -> None:
        trainer = self.trainer
        # A restored mid-epoch state, a dataloader_iter step, or a callback that asked to skip
        # backward (StochasticWeightAveraging): Lightning's own body.
        if (
            self.restarting
            or isinstance(data_fetcher, _DataLoaderIterDataFetcher)
            or self.automatic_optimization._skip_backward
        ):
            return super().advance(data_fetcher)
        self.val_loop.restarting = False
        batch, _, __ = next(data_fetcher)
        batch_idx = self.batch_idx + 1
        progress = self.batch_progress
        progress.is_last_batch = data_fetcher.done
        progress.increment_ready()
        trainer._logger_connector.on_batch_start(batch)
        self._call("on_train_batch_start", batch, batch_idx)
        progress.increment_started()
        output = self._step(batch, batch_idx)
        progress.increment_processed()
        self.update_lr_schedulers("step", update_plateau_schedulers=False)
        if self._num_ready_batches_reached():
            self.update_lr_schedulers("epoch", update_plateau_schedulers=False)
        self._call("on_train_batch_end", output, batch, batch_idx)
        trainer._logger_connector.on_batch_end()
        progress.increment_completed()
        trainer._logger_connector.update_train_step_metrics()

    def _step(self, batch, batch_idx: int) -> dict:
        """`_AutomaticOptimization.run` for one optimiser, unwrapped."""
        trainer = self.trainer
        module = trainer.lightning_module
        optimizer = trainer.optimizers[0]
        progress = self.automatic_optimization.optim_progress.optimizer
        accumulate = trainer.accumulate_grad_batches
        zero_grad = batch_idx % accumulate == 0  # the first batch of an accumulation
        result = {}

        @torch.enable_grad()
        def closure():
            previous, module._current_fx_name = module._current_fx_name, "training_step"
            loss = module.training_step(batch, batch_idx) / accumulate  # Lightning's too
            module._current_fx_name = previous
            result["loss"] = loss.detach().clone()
            if zero_grad:
                progress.zero_grad.increment_ready()
                self._call("on_before_zero_grad", optimizer)
                progress.zero_grad.increment_started()
                optimizer.zero_grad()
                progress.zero_grad.increment_completed()
            self._call("on_before_backward", loss)
            loss.backward()
            self._call("on_after_backward")
            return result["loss"]

        if self._should_accumulate():
            closure()
            return result

        def step_closure():  # the precision plugin's _wrap_closure
            loss = closure()
            self._call("on_before_optimizer_step", optimizer)
            if trainer.gradient_clip_val:
                module.clip_gradients(
                    optimizer, trainer.gradient_clip_val, trainer.gradient_clip_algorithm
                )
            return loss

        progress.step.increment_ready()
        optimizer.step(closure=step_closure)
        progress.step.increment_completed()
        return result


def blocker(trainer, model, datamodule) -> tuple[str, object, str] | None:
    """(key, value, why) of the first thing the lean loop would do differently, or None."""
    from lightning.pytorch.callbacks import BatchSizeFinder, LearningRateFinder
    from lightning.pytorch.profilers import PassThroughProfiler
    from lightning.pytorch.strategies import SingleDeviceStrategy

    from deeptune.data.datamodule import TensorDataModule
    from deeptune.models.module import TaskModule

    if not isinstance(datamodule, TensorDataModule):
        target = f"{type(datamodule).__module__}.{type(datamodule).__qualname__}"
        return "data._target_", target, "steps on the in-memory tables (TensorDataModule) only"
    if type(trainer.strategy) is not SingleDeviceStrategy:
        key = "trainer.devices" if trainer.num_devices > 1 else "trainer.strategy"
        value = trainer.num_devices if trainer.num_devices > 1 else type(trainer.strategy).__name__
        return key, value, "runs on one device only"
    if trainer.num_nodes > 1:
        return "trainer.num_nodes", trainer.num_nodes, "runs on one device only"
    if trainer.precision not in ("32-true", "32"):
        return "trainer.precision", trainer.precision, "steps in 32-true only (no autocast)"
    if not isinstance(trainer.profiler, PassThroughProfiler):
        return "trainer.profiler", type(trainer.profiler).__name__, "would not time the steps"
    if not model.automatic_optimization:
        return "model", type(model).__name__, "runs automatic optimisation only"
    overridden = [h for h in STEP_HOOKS if is_overridden(h, model, LightningModule)]
    if type(model).training_step is not TaskModule.training_step:
        overridden.insert(0, "training_step")
    overridden += [h for h in STEP_HOOKS[-3:] if is_overridden(h, datamodule, LightningDataModule)]
    if overridden:
        return "model", type(model).__name__, f"overrides {overridden[0]}: Lightning's loop runs it"
    for callback in trainer.callbacks:
        if isinstance(callback, (LearningRateFinder, BatchSizeFinder)):
            return "callbacks", type(callback).__name__, "drives the fit loop itself"
    return None


def install(loop: str, trainer, model, datamodule) -> str:
    """Put the lean epoch loop into `trainer` where `loop` (auto / lean / lightning) asks for it
    and it applies; the loop chosen. An explicit `lean` that cannot apply is a ConfigError
    naming the key that prevents it."""
    if loop not in LOOPS:
        raise ConfigError("loop", loop, f"must be one of {', '.join(LOOPS)}")
    if loop == "lightning":
        return loop
    if (why := blocker(trainer, model, datamodule)) is not None:
        if loop == "lean":
            key, value, reason = why
            raise ConfigError(key, value, f"loop=lean {reason}: use loop=auto or lightning")
        return "lightning"
    old = trainer.fit_loop.epoch_loop
    trainer.fit_loop.epoch_loop = LeanEpochLoop(
        trainer, min_steps=old.min_steps, max_steps=old.max_steps
    )
    return "lean"
