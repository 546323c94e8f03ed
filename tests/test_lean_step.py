"""`loop=lean` (deeptune.run.lean) trains exactly as Lightning's loop: the same metrics, the same
logged rows (steps, learning rates, gradient norms), the same NaN stop, the same resume; `auto`
keeps Lightning's loop where the lean one would differ, and an explicit `lean` there is refused."""

import json
from pathlib import Path

import lightning as L
import pytest

from deeptune import builders
from deeptune.callbacks.nonfinite import NonFiniteLoss
from deeptune.config import validate
from deeptune.errors import ConfigError, Interrupted
from deeptune.train import train

TIMINGS = ("duration_s", "fit_s", "fit_cpu_s", "best_checkpoint", "provenance", "loop")


def _metrics(cfg) -> dict:
    return json.loads((Path(cfg.paths.output_dir) / "metrics.json").read_text())


def _both(train_cfg, *overrides) -> dict:
    """{loop: (metrics.json, metrics.csv)} of the same run with each loop."""
    runs = {}
    for loop in ("lightning", "lean"):
        cfg = train_cfg("trainer.max_epochs=3", *overrides, f"loop={loop}", out=loop)
        train(cfg)
        metrics = _metrics(cfg)
        assert metrics["loop"] == loop
        rows = (Path(cfg.paths.output_dir) / "csv" / "metrics.csv").read_text()
        runs[loop] = ({k: v for k, v in metrics.items() if k not in TIMINGS}, rows)
    return runs


@pytest.mark.parametrize(
    "overrides",
    [
        [],
        ["model.dropout=0.3"],
        ["optimizer=sgd", "optimizer.lr=0.5", "trainer.gradient_clip_val=0.05"],
        ["trainer.gradient_clip_val=0.01", "trainer.gradient_clip_algorithm=value"],
        ["scheduler=step", "scheduler.step_size=1"],
        ["scheduler=plateau"],
        ["optimizer=lbfgs", "data.batch_size=256"],
        ["trainer.accumulate_grad_batches=3"],
        ["+trainer.val_check_interval=0.5", "+trainer.max_steps=45"],
        ["+trainer.limit_train_batches=7", "callbacks.grad_health.every_n_steps=2"],
        ["callbacks.early_stopping.patience=0", "trainer.max_epochs=6"],
        ["finetune.freeze=[0]", "finetune.freeze_epochs=1"],
    ],
    ids=[
        "default",
        "dropout",
        "clip-norm",
        "clip-value",
        "step-lr",
        "plateau",
        "lbfgs",
        "accumulate",
        "val-interval-max-steps",
        "limit-batches",
        "early-stopping",
        "freeze",
    ],
)
def test_lean_trains_exactly_as_lightning(train_cfg, overrides):
    runs = _both(train_cfg, *overrides)
    (lightning, lightning_rows), (lean, lean_rows) = runs["lightning"], runs["lean"]
    assert lean == lightning
    # every logged row: the steps, the learning rates, the gradient-health norms and their steps
    assert lean_rows == lightning_rows
    assert "grad_norm/" in lean_rows and "lr-" in lean_rows


def test_the_default_run_takes_the_lean_loop(train_cfg):
    cfg = train_cfg()
    train(cfg)
    assert _metrics(cfg)["loop"] == "lean"


def test_a_nan_loss_stops_at_the_same_step(train_cfg):
    messages = {}
    for loop in ("lightning", "lean"):
        cfg = train_cfg("optimizer=sgd", "optimizer.lr=1e6", f"loop={loop}", out=loop)
        with pytest.raises(NonFiniteLoss) as stop:
            train(cfg)
        messages[loop] = str(stop.value)
        assert _metrics(cfg)["grad_health"]["verdict"] == "exploding"
    assert messages["lean"] == messages["lightning"]
    assert "at epoch 1, step" in messages["lean"]


class SigtermAt(L.Callback):
    """Lightning's SIGTERM flag at `epoch`'s batch 1: the run stops after that step."""

    def __init__(self, epoch: int):
        self.epoch = epoch

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if trainer.current_epoch == self.epoch and batch_idx == 1:
            trainer._signal_connector.received_sigterm = True


def test_a_lean_run_stopped_by_sigterm_resumes_to_the_lightning_result(train_cfg, monkeypatch):
    quiet = ["callbacks.early_stopping=null", "model.dropout=0.2"]
    reference = train_cfg("trainer.max_epochs=3", *quiet, "loop=lightning", out="whole")
    train(reference)
    cfg = train_cfg("trainer.max_epochs=3", *quiet, "loop=lean")
    build = builders.callbacks
    stop = {"sigterm": SigtermAt(epoch=1)}
    monkeypatch.setattr(builders, "callbacks", lambda *a, **k: {**build(*a, **k), **stop})
    with pytest.raises(Interrupted):
        train(cfg)
    assert _metrics(cfg)["status"] == "interrupted"
    monkeypatch.undo()
    train(cfg)  # resume=auto: from last.ckpt, the end of epoch 1
    resumed, whole = _metrics(cfg), _metrics(reference)
    for key in ("train", "val", "test", "epochs", "best_epoch", "grad_health"):
        assert resumed[key] == whole[key], key


@pytest.mark.parametrize(
    "overrides, key",
    [
        (["debug=profile"], "trainer.profiler"),
        (["trainer.precision=bf16-mixed"], "trainer.precision"),
    ],
    ids=["profiler", "autocast"],
)
def test_auto_keeps_lightnings_loop_where_lean_would_differ(train_cfg, overrides, key):
    cfg = train_cfg(*overrides)
    train(cfg)
    assert _metrics(cfg)["loop"] == "lightning"
    with pytest.raises(ConfigError, match=rf"^{key}=.* loop=lean "):
        train(train_cfg(*overrides, "loop=lean", out="lean"))


def test_several_devices_keep_lightnings_loop(train_cfg):
    from deeptune.run.fit import assemble

    cfg = train_cfg("trainer=ddp", "trainer.accelerator=cpu")
    assert assemble(cfg, builders.source(cfg)).loop == "lightning"  # built, not fitted
    cfg = train_cfg("trainer=ddp", "trainer.accelerator=cpu", "loop=lean", out="lean")
    with pytest.raises(ConfigError, match=r"^trainer.devices=2 .* loop=lean runs on one device"):
        assemble(cfg, builders.source(cfg))


def test_a_bad_loop_names_the_key_and_the_choices(train_cfg):
    with pytest.raises(ConfigError, match=r"^loop='fast' is invalid: .*auto, lean, lightning"):
        validate(train_cfg("loop=fast"))
