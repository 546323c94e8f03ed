"""GPU knobs as checked config keys: precision, gradient accumulation, float32 matmul precision,
torch.compile of the network, and the NaN check that stays on the device."""

import json
import logging
import math
import time
from pathlib import Path
from types import SimpleNamespace
from typing import get_args

import numpy as np
import pytest
import torch
from helpers.runs import ROOT, run_cli

import deeptune
from deeptune import builders
from deeptune.callbacks.nonfinite import NonFiniteLoss, StopOnNonFiniteLoss
from deeptune.config import validate
from deeptune.errors import ConfigError, NodeError
from deeptune.run.fit import assemble
from deeptune.run.schema import PRECISIONS
from deeptune.train import train

MOONS = ["data=moons", "~callbacks.progress_bar", "~callbacks.model_summary"]


def _error(cfg) -> str:
    with pytest.raises(ConfigError) as err:
        validate(cfg)
    assert "\n" not in str(err.value)
    return str(err.value)


def test_precision_names_are_lightnings_own():
    from lightning.fabric.connector import (
        _PRECISION_INPUT_INT,
        _PRECISION_INPUT_STR,
        _PRECISION_INPUT_STR_ALIAS,
    )

    lightning = {*get_args(_PRECISION_INPUT_STR), *get_args(_PRECISION_INPUT_INT)}
    lightning |= set(get_args(_PRECISION_INPUT_STR_ALIAS))
    assert set(PRECISIONS) - {"auto"} == lightning


def test_bf16_autocast_with_accumulation_trains(train_cfg):
    cfg = train_cfg(*MOONS, "trainer.precision=bf16-mixed", "trainer.accumulate_grad_batches=2")
    validate(cfg)
    parts = assemble(cfg, builders.source(cfg))
    assert parts.trainer.precision == "bf16-mixed" and parts.trainer.accumulate_grad_batches == 2
    assert math.isfinite(train(cfg))
    metrics = json.loads((Path(cfg.paths.output_dir) / "metrics.json").read_text())
    assert metrics["status"] == "completed" and metrics["test"]["acc"] > 0.5


def test_accumulation_halves_the_optimiser_steps(train_cfg):
    steps = {}
    for k in (1, 2):
        cfg = train_cfg(*MOONS, f"trainer.accumulate_grad_batches={k}", out=f"k{k}")
        parts = assemble(cfg, builders.source(cfg))
        parts.trainer.fit(parts.model, datamodule=parts.datamodule)
        steps[k] = parts.trainer.global_step
    assert steps[2] == math.ceil(steps[1] / 2)


def test_bad_gpu_knobs_are_one_line(train_cfg):
    message = _error(train_cfg("trainer.precision=foo"))
    assert message.startswith("trainer.precision='foo' is invalid: must be one of auto, 32-true")
    assert "bf16-mixed" in message and "aliases 64, 32, 16, bf16" in message
    assert _error(train_cfg("trainer.accumulate_grad_batches=0")).startswith(
        "trainer.accumulate_grad_batches=0 is invalid: must be an integer >= 1"
    )
    assert _error(train_cfg("trainer.float32_matmul_precision=low")).startswith(
        "trainer.float32_matmul_precision='low' is invalid: must be one of highest, high, medium"
    )
    assert _error(train_cfg("model=rnn", "model.compile=yes")).startswith(
        "model.compile='yes' is invalid: must be true or false"
    )
    assert _error(train_cfg("callbacks.non_finite_loss.every_n_batches=0")).startswith(
        "callbacks.non_finite_loss.every_n_batches=0 is invalid: must be an integer >= 1"
    )


def test_precision_foo_on_the_command_line(tmp_path):
    result = run_cli(str(ROOT / "train.py"), "trainer.precision=foo", cwd=tmp_path)
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("error: trainer.precision='foo' is invalid: must be one of auto")


def test_lbfgs_cannot_accumulate_or_autocast(train_cfg):
    assert _error(train_cfg("optimizer=lbfgs", "trainer.accumulate_grad_batches=4")).startswith(
        "trainer.accumulate_grad_batches=4 is invalid: optimizer=lbfgs steps on one batch"
    )
    assert _error(train_cfg("optimizer=lbfgs", "trainer.precision=16-mixed")).startswith(
        "trainer.precision='16-mixed' is invalid: optimizer=lbfgs cannot run under autocast"
    )
    assert "auto picks bf16-mixed" in _error(train_cfg("optimizer=lbfgs", "trainer=gpu"))
    validate(train_cfg("optimizer=lbfgs", "trainer.precision=bf16-true"))


def test_gpu_and_ddp_presets_compose_with_the_knobs(train_cfg):
    gpu = train_cfg("trainer=gpu")
    assert gpu.trainer.precision == "auto" and gpu.trainer.float32_matmul_precision == "high"
    validate(gpu)
    ddp = train_cfg(
        "trainer=ddp", "trainer.precision=bf16-mixed", "trainer.accumulate_grad_batches=2"
    )
    assert ddp.trainer.strategy == "ddp" and ddp.trainer.precision == "bf16-mixed"
    validate(ddp)


def test_matmul_precision_is_set_not_passed(train_cfg):
    before = torch.get_float32_matmul_precision()
    try:
        cfg = train_cfg("trainer.float32_matmul_precision=medium")
        trainer = builders.trainer(cfg, callbacks=[], logger=False)  # Lightning would refuse it
        assert torch.get_float32_matmul_precision() == "medium"
        assert trainer.precision == "32-true"
        builders.trainer(train_cfg(), callbacks=[], logger=False)
        assert torch.get_float32_matmul_precision() == "highest"  # the next run's own setting
    finally:
        torch.set_float32_matmul_precision(before)


@pytest.mark.parametrize(
    ("accelerator", "cuda", "bf16", "chosen"),
    [
        ("gpu", True, True, "bf16-mixed"),
        ("auto", True, True, "bf16-mixed"),
        ("gpu", True, False, "32-true"),  # before Ampere: bfloat16 only emulated
        ("cpu", True, True, "32-true"),  # trainer=cpu on a GPU machine
        ("auto", False, False, "32-true"),
    ],
)
def test_auto_precision(monkeypatch, caplog, accelerator, cuda, bf16, chosen):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: bf16)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *a: "NVIDIA H200")
    with caplog.at_level(logging.INFO, logger="deeptune.builders"):
        assert builders.auto_precision(accelerator) == chosen
    (line,) = [r.getMessage() for r in caplog.records]
    assert line.startswith(f"trainer.precision=auto: {chosen} (")
    assert ("NVIDIA H200" in line) == (chosen == "bf16-mixed")


def test_auto_precision_builds_a_float32_trainer_on_the_cpu(train_cfg):
    trainer = builders.trainer(train_cfg("trainer=cpu", "trainer.precision=auto"), callbacks=[])
    assert trainer.precision == "32-true"


# ---------------------------------------------------------------------------------------------
# The NaN check: on the device, read every N batches


def _feed(callback, losses, steps_per_batch=1):
    trainer = SimpleNamespace(current_epoch=0, global_step=0)
    for i, value in enumerate(losses):
        trainer.global_step = (i + 1) * steps_per_batch
        callback.on_train_batch_end(trainer, None, {"loss": torch.tensor(value)}, None, i)
    return trainer


def test_nan_check_reads_once_per_window_and_names_the_first_bad_step():
    callback = StopOnNonFiniteLoss(every_n_batches=4)
    _feed(callback, [0.5, 0.4, 0.3])  # a window not yet full: not read
    assert len(callback.window) == 3
    callback = StopOnNonFiniteLoss(every_n_batches=4)
    with pytest.raises(NonFiniteLoss, match=r"became inf at epoch 1, step 2 \(batch 1\)"):
        _feed(callback, [0.5, math.inf, math.nan, 0.3])


def test_nan_check_reads_what_is_left_before_validation_and_at_epoch_end():
    for hook in ("on_validation_start", "on_train_epoch_end", "on_train_end"):
        callback = StopOnNonFiniteLoss(every_n_batches=100)
        trainer = _feed(callback, [0.5, 0.4, math.nan])
        with pytest.raises(NonFiniteLoss, match=r"became nan at epoch 1, step 3 \(batch 2\)"):
            getattr(callback, hook)(trainer, None)
    callback = StopOnNonFiniteLoss(every_n_batches=100)
    trainer = _feed(callback, [math.nan])
    with pytest.raises(NonFiniteLoss):  # a checkpoint never holds weights trained on a NaN
        callback.on_save_checkpoint(trainer, None, {})


def test_nan_stop_names_the_same_step_whatever_the_window(train_cfg):
    messages = {}
    for every in (1, 1000):
        cfg = train_cfg(
            *MOONS,
            "optimizer=sgd",
            "optimizer.lr=1e6",
            f"callbacks.non_finite_loss.every_n_batches={every}",
            out=f"every{every}",
        )
        with pytest.raises(NonFiniteLoss) as err:
            train(cfg)
        messages[every] = str(err.value)
        record = json.loads((Path(cfg.paths.output_dir) / "metrics.json").read_text())
        assert record["status"] == "failed" and record["reason"] == messages[every]
        assert not (Path(cfg.paths.output_dir) / "checkpoints" / "best.ckpt").exists()
    assert messages[1] == messages[1000] and "at epoch 1, step" in messages[1]


# ---------------------------------------------------------------------------------------------
# model.compile


@pytest.mark.parametrize("model", ["mlp", "rnn"])
def test_compile_is_a_key_of_every_model_and_leaves_the_weights_names(train_cfg, model):
    eager, compiled = (
        assemble(cfg, builders.source(cfg))
        for cfg in (
            train_cfg(*MOONS, f"model={model}", out="eager"),
            train_cfg(*MOONS, f"model={model}", "model.compile=true", out="compiled"),
        )
    )
    assert not eager.model.compile_net and compiled.model.compile_net
    compiled.model.setup("fit")
    assert list(compiled.model.state_dict()) == list(eager.model.state_dict())
    compiled.model.teardown("fit")


@pytest.mark.slow
def test_compiled_training_matches_eager(train_cfg):
    """One epoch with the network compiled (inductor, gcc on the CPU) gives the eager metrics;
    gradient health reads the same layers, and the checkpoint loads and predicts."""
    import torch._inductor.config as inductor
    from torch._dynamo.utils import counters

    runs = {}
    for compile_ in (False, True):
        # 700 training samples in batches of 100: no last, smaller batch to compile again for
        overrides = ["model.width=32", "data.batch_size=100", f"model.compile={compile_}"]
        cfg = train_cfg(*MOONS, *overrides, out=str(compile_))
        started = time.perf_counter()
        # A few kernels compile faster in this process than a pool of workers starts (each
        # imports torch): 38 s instead of 60 s on two cores.
        with inductor.patch(compile_threads=1):
            train(cfg)
        out = Path(cfg.paths.output_dir)
        runs[compile_] = json.loads((out / "metrics.json").read_text()), out
        print(f"compile={compile_}: {time.perf_counter() - started:.1f} s")
    assert counters["stats"]["unique_graphs"] > 0  # the network was compiled, not skipped
    (eager, _), (compiled, out) = runs[False], runs[True]
    for split in ("train", "val", "test"):
        for name, value in eager[split].items():
            assert compiled[split][name] == pytest.approx(value, abs=1e-4), (split, name)
    assert compiled["grad_health"]["layers"] == eager["grad_health"]["layers"]
    assert compiled["grad_health"]["verdict"] == eager["grad_health"]["verdict"]
    best = out / "checkpoints" / "best.ckpt"
    saved = torch.load(best, weights_only=True)["state_dict"]
    eager_saved = torch.load(runs[False][1] / "checkpoints" / "best.ckpt", weights_only=True)
    assert list(saved) == list(eager_saved["state_dict"])
    model = deeptune.load(best)
    x = np.random.default_rng(0).normal(size=(8, 2))
    np.testing.assert_allclose(model.predict_proba(x).sum(1), 1.0, rtol=1e-5)


@pytest.mark.slow
def test_a_compiler_failure_names_model_compile(train_cfg):
    import torch._inductor.config as inductor

    cfg = train_cfg(*MOONS, "model.width=24", "model.compile=true")
    with (
        inductor.patch({"cpp.cxx": (None, "/nonexistent/g++"), "fx_graph_cache": False}),
        pytest.raises(Exception) as err,
    ):
        train(cfg)
    message = str(NodeError.of(err.value.config_node, err.value))
    print(message)
    assert message.startswith("model.compile: ") and "\n" not in message
