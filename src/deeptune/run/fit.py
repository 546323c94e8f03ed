"""One model: built from the config, fitted, its kept checkpoint tested, its metrics returned.

Every run mode repeats `fit_one` (deeptune.run.repeat). A fit that fails still leaves its
record: metrics.json with status failed (or pruned, for a trial its sweep stopped), the reason,
and what the callbacks had measured by then; one stopped by a signal, status interrupted.
"""

import re
import time
from dataclasses import dataclass
from pathlib import Path

from omegaconf import DictConfig

from deeptune import builders, outputs, provenance, signals
from deeptune.config import derive, validate_against_model
from deeptune.console import DETAILS, say
from deeptune.data.component import ComponentData
from deeptune.loggers import hparams
from deeptune.run import blame, ddp, portable, resume


@dataclass
class Parts:
    """What one fit is made of, each built from its config node."""

    datamodule: object
    model: object
    loggers: dict
    callbacks: dict
    trainer: object
    loop: str = "lightning"  # the training loop `loop` picked: lean or lightning


def assemble(cfg: DictConfig, data) -> Parts:
    """Build the data module, the model, the loggers, the callbacks and the trainer. `data`: the
    Table, or a component data module's description (deeptune.data.component)."""
    datamodule = builders.datamodule(cfg, data)
    model = builders.module(cfg, datamodule)
    model.deeptune_state = portable.describe(cfg, datamodule)  # into every checkpoint
    if not isinstance(data, ComponentData) and not model.compile_net:
        # The table's samples are float tensors of this shape: Lightning's model summary runs
        # one through the network to count its FLOPs (a user's module may batch a dict: none).
        import torch

        model.example_input_array = torch.zeros(1, *datamodule.input_shape)
    validate_against_model(cfg, model.net, datamodule)
    loggers = builders.loggers(cfg)
    callbacks = builders.callbacks(cfg, has_logger=bool(loggers))
    trainer = builders.trainer(
        cfg, callbacks=list(callbacks.values()), logger=list(loggers.values()) or False
    )
    from deeptune.run import lean

    # `loop` (older configs lack it: auto). Here, once the trainer knows its strategy.
    chosen = lean.install(cfg.get("loop", "auto"), trainer, model, datamodule)
    return Parts(datamodule, model, loggers, callbacks, trainer, chosen)


def fit_one(cfg: DictConfig, data) -> tuple[dict, bool]:
    """Fit, evaluate the kept checkpoint; (metrics, whether this process is rank 0)."""
    import lightning as L

    ckpt = resume.resume_point(cfg)
    out_dir = Path(cfg.paths.output_dir)
    ddp.use_job_commands(str(out_dir))
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    cfg = derive(cfg, hparams.grouping(cfg))  # the sweep's W&B group, MLflow's run name
    parts = assemble(cfg, data)
    trainer = parts.trainer
    loggers = list(parts.loggers.values())
    if trainer.is_global_zero:
        outputs.save_config(cfg, out_dir)
        say(story(cfg, parts, ckpt))
    try:
        with blame.blamed(blame.owners(parts, cfg)):
            if trainer.is_global_zero:  # the trainer's: debug=fast swaps them for a dummy
                hparams.log(trainer.loggers, cfg, parts.model.net)
            metrics = _fit_and_test(cfg, parts, ckpt)
            if trainer.is_global_zero:
                hparams.log_result(trainer.loggers, cfg, metrics, step=trainer.global_step)
            if trainer.is_global_zero and (cfg.report.confusion or cfg.report.tsne):
                from deeptune.diagnostics.final_model import final_report

                metrics["report"] = final_report(
                    cfg, parts.model, parts.datamodule, out_dir, loggers
                )
        DETAILS.info("rank %d of %d: %s", trainer.global_rank, trainer.world_size, brief(metrics))
        return metrics, trainer.is_global_zero
    except Exception as err:
        if trainer.is_global_zero:
            outputs.save_metrics(_failure(err, trainer, cfg), out_dir)
        raise
    except BaseException as err:  # SIGTERM, Ctrl-C (SystemExit and KeyboardInterrupt)
        if (stop := signals.stopped(err)) is None:
            raise
        if trainer.is_global_zero:
            outputs.save_metrics(_interruption(stop, trainer, cfg), out_dir)
        if not stop.where:
            saved = (out_dir / resume.LAST).is_file()
            how = "continues it" if saved else "starts it again (no checkpoint yet)"
            stop.where = (
                f"at epoch {trainer.current_epoch + 1} in {out_dir}; the same command {how}"
            )
        raise stop from None
    finally:
        _finish_wandb(parts.loggers)
        ddp.end_process_group()


def story(cfg: DictConfig, parts: Parts, ckpt: str | None) -> str:
    """The run in one line: the network, the data, how long and where it trains."""
    dm, net, trainer = parts.datamodule, parts.model.net, parts.trainer
    n_params = sum(p.numel() for p in net.parameters())
    samples = ""
    if indices := getattr(dm, "indices", None):  # the tensor path's split
        sizes = " / ".join(f"{len(indices[s]):,}" for s in ("train", "val", "test") if s in indices)
        samples = f"{sizes} train / val / test samples, "
    shape = tuple(dm.input_shape)
    classes = builders.class_names(dm)
    target = f"{len(classes)} classes" if classes else "regression"
    device = type(trainer.accelerator).__name__.removesuffix("Accelerator").lower()
    where = (
        f"{trainer.num_devices} {device}"
        if trainer.num_nodes == 1
        else (f"{trainer.num_nodes} x {trainer.num_devices} {device}")
    )
    n = trainer.max_epochs
    epochs = f"up to {n} epoch{'s' if n != 1 else ''}" if n and n > 0 else "no epoch limit"
    part = Path(cfg.paths.output_dir).name
    part = f"{part}: " if re.fullmatch(r"(restart|fold)_\d+", part) else ""
    resumed = f", continuing {Path(ckpt).name}" if ckpt else ""
    return (
        f"deeptune: {part}{type(net).__name__} ({n_params:,} parameters) on {_data_name(cfg)} "
        f"({samples}input {shape}, {target}), {epochs} on {where}{resumed}"
    )


def _data_name(cfg: DictConfig) -> str:
    """The `data` choice (digits, csv, ...), with the file it reads when it reads one."""
    from hydra.core.hydra_config import HydraConfig

    source = cfg.data.get("source") or {}
    name = HydraConfig.get().runtime.choices.get("data") if HydraConfig.initialized() else None
    name = name or str(source.get("_target_") or cfg.data.get("_target_")).rpartition(".")[2]
    path = source.get("path") if hasattr(source, "get") else None
    return f"{name} {Path(path).name}" if path else name


def brief(metrics: dict) -> str:
    """A rank's final figures, one short line for the log (metrics.json has them all)."""
    splits = [
        f"{split} " + " ".join(f"{k}={_figure(v)}" for k, v in metrics[split].items())
        for split in ("train", "val", "test")
        if metrics.get(split)
    ]
    return f"epochs {metrics.get('epochs')}, best {metrics.get('best_epoch')}; " + "; ".join(splits)


def _figure(value) -> str:
    return f"{value:.6g}" if isinstance(value, (int, float)) else str(value)


def _failure(err: Exception, trainer, cfg: DictConfig) -> dict:
    """The record of a fit that stopped: pruned by its sweep, or failed, and why."""
    pruned = type(err).__name__ == "TrialPruned"
    reason = str(err).splitlines()[0] if str(err) else type(err).__name__
    record = {"status": "pruned" if pruned else "failed", "reason": reason}
    record.update(epochs=trainer.current_epoch, seed=cfg.seed, provenance=provenance.collect())
    _add_callback_reports(record, trainer)  # e.g. the gradient-health verdict
    return record


def _interruption(stop, trainer, cfg: DictConfig) -> dict:
    last = Path(cfg.paths.output_dir) / resume.LAST
    return {
        "status": "interrupted",
        "signal": stop.name,
        "epochs": trainer.current_epoch,
        "seed": cfg.seed,
        "resume_from": str(last) if last.is_file() else None,
        "provenance": provenance.collect(),
    }


def _fit_and_test(cfg: DictConfig, parts: Parts, ckpt: str | None) -> dict:
    trainer, model, datamodule = parts.trainer, parts.model, parts.datamodule
    started, cpu_started = time.perf_counter(), time.process_time()
    # weights_only=True whatever torch's default (it changed in torch 2.6): deeptune.trust
    trainer.fit(model, datamodule=datamodule, ckpt_path=ckpt, weights_only=True)
    fit_s = round(time.perf_counter() - started, 3)
    fit_cpu_s = round(time.process_time() - cpu_started, 3)
    metrics = {"train": outputs.split_metrics(trainer.callback_metrics).get("train", {})}
    if not metrics["train"] and ckpt:
        metrics["train"] = _evaluate_train_split(trainer, model, datamodule)
    best = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
    # Report the model that was kept: the best checkpoint when there is one, read once (not once
    # per evaluation as ckpt_path= would, nor again for its epoch).
    best_epoch = _load_best(model, best) if best else None
    evaluations = [trainer.validate] + ([trainer.test] if cfg.test else [])
    for evaluate in evaluations:
        results = evaluate(model, datamodule, verbose=False)[0]
        metrics.update(outputs.split_metrics(results))
    metrics.update(
        # the network's size: an objective of its own in a multi-objective sweep
        n_params=sum(p.numel() for p in model.net.parameters()),
        epochs=trainer.current_epoch,
        best_epoch=best_epoch,
        best_checkpoint=best or None,
        fit_s=fit_s,  # seconds inside trainer.fit: what scripts/bench_overhead.py compares
        # the process's CPU seconds in it (all its threads): on a shared machine a steadier figure
        fit_cpu_s=fit_cpu_s,
        loop=parts.loop,  # lean or lightning (`loop`; deeptune.run.lean)
    )
    if report := getattr(model, "finetune_report", None):
        metrics["finetune"] = dict(report)
    _add_callback_reports(metrics, trainer)
    return metrics


def _evaluate_train_split(trainer, model, datamodule) -> dict:
    """The final model's figures on the training split. A fit resumed from a checkpoint written
    after its last epoch (killed before metrics.json) trains no step, so no epoch logged them;
    this evaluates the same weights in eval mode instead of the last epoch's running average."""
    loader = datamodule.train_dataloader()
    results = trainer.validate(model, dataloaders=loader, verbose=False, weights_only=True)[0]
    return outputs.split_metrics(results).get("val", {})


def _add_callback_reports(metrics: dict, trainer) -> None:
    """Merge each callback's `report()` (step-wise schedule, frozen layers, gradient health, the
    learning-rate finder's rate, ...) into metrics.json's entries; two callbacks may fill the
    same entry."""
    for callback in trainer.callbacks:
        for key, value in getattr(callback, "report", dict)().items():
            metrics.setdefault(key, {}).update(value)


def _load_best(model, path: str) -> int:
    """The best checkpoint's weights into `model` (as Lightning restores a ckpt_path for
    validate / test: the state_dict and the module's on_load_checkpoint); its 1-based epoch."""
    import torch

    checkpoint = torch.load(path, map_location=model.device, weights_only=True)
    model.on_load_checkpoint(checkpoint)
    model.load_state_dict(checkpoint["state_dict"])
    return checkpoint["epoch"] + 1


def _finish_wandb(loggers: dict) -> None:
    """Close the W&B run so that the next multirun job starts a run of its own."""
    if any(type(lg).__name__ == "WandbLogger" for lg in loggers.values()):
        import wandb

        wandb.finish()
