"""best.ckpt and last.ckpt are written when needed (deeptune.callbacks.checkpoints): once in a
short run, on a cadence in a long one, on an interruption, never for a failure."""

import json
from pathlib import Path

import lightning as L
import pytest
import torch

from deeptune import builders
from deeptune.checkpoints import LocalCheckpointIO
from deeptune.errors import ConfigError, Interrupted
from deeptune.train import train

QUIET = ["callbacks.early_stopping=null", "keep_last=true"]


@pytest.fixture
def writes(monkeypatch):
    """The names of the checkpoint files written, in order."""
    names = []
    save = LocalCheckpointIO.save_checkpoint

    def counted(self, checkpoint, path, storage_options=None):
        names.append(Path(path).name)
        return save(self, checkpoint, path, storage_options)

    monkeypatch.setattr(LocalCheckpointIO, "save_checkpoint", counted)
    return names


def _with(monkeypatch, *extra):
    build = builders.callbacks
    added = {f"extra_{i}": callback for i, callback in enumerate(extra)}
    monkeypatch.setattr(builders, "callbacks", lambda *a, **k: {**build(*a, **k), **added})


class Weights(L.Callback):
    """The network's weights and the monitored score at each validation's end."""

    def __init__(self):
        self.epochs = {}

    def on_validation_end(self, trainer, pl_module):
        if not trainer.sanity_checking:
            state = {k: v.detach().clone() for k, v in pl_module.state_dict().items()}
            self.epochs[trainer.current_epoch] = state


class RaiseAt(L.Callback):
    """At the start of `epoch`'s batch 1: set Lightning's SIGTERM flag (the run then stops at
    the end of that step, as after a real SIGTERM), or raise `error`."""

    def __init__(self, epoch: int, error: BaseException | None = None):
        self.epoch, self.error = epoch, error

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if trainer.current_epoch == self.epoch and batch_idx == 1:
            if self.error is None:
                trainer._signal_connector.received_sigterm = True
            else:
                raise self.error


def _metrics(cfg) -> dict:
    return json.loads((Path(cfg.paths.output_dir) / "metrics.json").read_text())


def _load(cfg, name: str) -> dict:
    path = Path(cfg.paths.output_dir) / "checkpoints" / name
    return torch.load(path, weights_only=True)


def test_a_short_run_writes_best_and_last_once_and_best_holds_the_best_epoch(
    train_cfg, writes, monkeypatch
):
    from deeptune.callbacks.checkpoints import BestCheckpoint

    held = []
    hold = BestCheckpoint.hold
    monkeypatch.setattr(
        BestCheckpoint, "hold", lambda s, t, f, c: held.append(f) or hold(s, t, f, c)
    )
    weights = Weights()
    _with(monkeypatch, weights)
    cfg = train_cfg("trainer.max_epochs=3", *QUIET, "optimizer.lr=0.003")
    train(cfg)
    assert len(held) >= 2  # improved more than once: Lightning would have written each
    assert sorted(writes) == ["best.ckpt", "last.ckpt"]
    best, last = _load(cfg, "best.ckpt"), _load(cfg, "last.ckpt")
    assert best["epoch"] + 1 == _metrics(cfg)["best_epoch"]
    assert last["epoch"] == 2  # the final epoch
    for name, tensor in weights.epochs[best["epoch"]].items():
        assert torch.equal(best["state_dict"][name], tensor), name
    if best["epoch"] != 2:  # the held copy did not follow the later steps
        final = weights.epochs[2]
        assert any(not torch.equal(best["state_dict"][k], final[k]) for k in final)
    # last.ckpt's record of the best names the file written and its score
    (record,) = (v for k, v in last["callbacks"].items() if k.startswith("BestCheckpoint"))
    assert Path(record["best_model_path"]) == Path(cfg.paths.output_dir) / "checkpoints/best.ckpt"
    best_record = next(v for k, v in best["callbacks"].items() if k.startswith("BestCheckpoint"))
    assert record["best_model_score"] == best_record["best_model_score"]


def test_every_s_0_writes_last_after_every_epoch(train_cfg, writes):
    cfg = train_cfg("trainer.max_epochs=3", *QUIET, "callbacks.last_checkpoint.every_s=0")
    train(cfg)
    assert writes.count("last.ckpt") == 3
    assert writes[0] == "best.ckpt"  # before the last.ckpt that names it
    assert 1 <= writes.count("best.ckpt") <= 3


def test_inside_a_slurm_job_last_is_written_after_every_epoch(train_cfg, writes, monkeypatch):
    # submitit's requeue on the time limit's signal never reaches on_exception: the requeued job
    # continues from what was written (tests/test_slurm.py runs the real thing)
    monkeypatch.setenv("SLURM_JOB_ID", "12345")
    train(train_cfg("trainer.max_epochs=3", *QUIET))
    assert writes.count("last.ckpt") == 3


def test_sigterm_writes_the_last_finished_epoch_and_the_run_resumes_to_the_same_result(
    train_cfg, writes, monkeypatch
):
    reference = train_cfg("trainer.max_epochs=3", *QUIET, out="whole")
    train(reference)
    writes.clear()
    cfg = train_cfg("trainer.max_epochs=3", *QUIET)
    _with(monkeypatch, RaiseAt(epoch=2))
    with pytest.raises(Interrupted):
        train(cfg)
    assert sorted(writes) == ["best.ckpt", "last.ckpt"]
    assert _metrics(cfg)["status"] == "interrupted"
    last = _load(cfg, "last.ckpt")
    assert last["epoch"] == 1  # the end of the last finished epoch, not the step it stopped in
    assert last["global_step"] == _load(reference, "last.ckpt")["global_step"] * 2 // 3
    monkeypatch.undo()
    train(cfg)
    for key in ("train", "val", "test", "epochs", "best_epoch"):
        assert _metrics(cfg)[key] == _metrics(reference)[key], key


@pytest.mark.parametrize("error", [RuntimeError("boom"), Interrupted(15)], ids=["error", "signal"])
def test_a_failure_writes_nothing_and_an_interruption_both(train_cfg, writes, monkeypatch, error):
    cfg = train_cfg("trainer.max_epochs=3", *QUIET)
    _with(monkeypatch, RaiseAt(epoch=2, error=error))
    with pytest.raises(type(error)):
        train(cfg)
    expected = ["best.ckpt", "last.ckpt"] if isinstance(error, Interrupted) else []
    assert sorted(writes) == expected


class PoisonAt(RaiseAt):
    """At `epoch`'s batch 1 the weights become NaN: the loss does too."""

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if trainer.current_epoch == self.epoch and batch_idx == 1:
            with torch.no_grad():
                for p in pl_module.parameters():
                    p.fill_(float("nan"))


def test_a_nan_loss_stop_writes_no_checkpoint(train_cfg, writes, monkeypatch):
    from deeptune.callbacks.nonfinite import NonFiniteLoss

    cfg = train_cfg("trainer.max_epochs=3", *QUIET)
    _with(monkeypatch, PoisonAt(epoch=2))
    with pytest.raises(NonFiniteLoss, match="at epoch 3"):
        train(cfg)
    assert writes == []  # two finished epochs held, none written


class SaveAt(L.Callback):
    """trainer.save_checkpoint(path) at `epoch`'s start, as Lightning's SLURM requeue does."""

    def __init__(self, epoch: int, path: Path):
        self.epoch, self.path = epoch, path

    def on_train_epoch_start(self, trainer, pl_module):
        if trainer.current_epoch == self.epoch:
            trainer.save_checkpoint(self.path)


def test_another_checkpoint_saved_writes_the_best_it_names_first(train_cfg, writes, monkeypatch):
    cfg = train_cfg("trainer.max_epochs=3", *QUIET)
    _with(monkeypatch, SaveAt(2, Path(cfg.paths.output_dir) / "checkpoints" / "hpc_ckpt_1.ckpt"))
    train(cfg)
    assert writes[:2] == ["best.ckpt", "hpc_ckpt_1.ckpt"]
    states = _load(cfg, "hpc_ckpt_1.ckpt")["callbacks"]
    (record,) = (v for k, v in states.items() if k.startswith("BestCheckpoint"))
    assert Path(record["best_model_path"]).name == "best.ckpt"


def test_every_s_must_be_seconds(train_cfg):
    cfg = train_cfg("callbacks.last_checkpoint.every_s=-1")
    with pytest.raises(ConfigError, match=r"callbacks\.last_checkpoint\.every_s=-1"):
        train(cfg)
