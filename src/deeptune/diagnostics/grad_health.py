"""Gradient health: per-layer gradient and weight norms, and a verdict on vanishing or exploding
gradients with the remedies that apply to this run's config.

Lightning's `grad_norm` gives each parameter's gradient norm; grouping them into layers, the
first/last ratio, the verdict and the advice are what no library does, so they live here.
"""

import logging
import math
import re
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.utilities import grad_norm

log = logging.getLogger(__name__)

PLOT_FILE = "grad_health.png"


def layer_of(param_name: str) -> str:
    """'hidden.3.linear.weight' -> 'hidden.3', 'rnn.weight_hh_l1_reverse' -> 'rnn.l1', 'head.bias'
    -> 'head'."""
    if m := re.match(r"(.*?\.\d+)\.", param_name):
        return m.group(1)
    if m := re.match(r"(.*?)\.\w+_l(\d+)", param_name):
        return f"{m.group(1)}.l{m.group(2)}"
    return param_name.split(".")[0]


def layer_norms(per_param: dict[str, float]) -> dict[str, float]:
    """Parameter norms -> layer norms (the norm of the layer's parameters as one vector)."""
    squares: dict[str, float] = {}
    for name, value in per_param.items():
        layer = layer_of(name)
        squares[layer] = squares.get(layer, 0.0) + value**2
    return {layer: math.sqrt(s) for layer, s in squares.items()}


def remedies(
    verdict: str, model: dict, clip: float | None, lr: float | None, dead: bool = False
) -> list[str]:
    """The fixes that apply to this run's model config, most effective first, each read after
    "try". `dead`: the first layer gets no gradient at all, the mark of ReLUs pushed below zero
    for every input by too large steps."""
    activation, init = model.get("activation"), model.get("init")
    mlp = "depth" in model  # the recurrent model has cell / layers instead
    tips = []
    if verdict == "vanishing" and dead:
        if lr is not None:
            tips.append(f"optimizer.lr={lr / 10:g}: large steps left units dead (now {lr:g})")
        if activation == "relu":
            tips.append("model.activation=leaky_relu: it passes gradient below zero")
    if verdict == "vanishing":
        if model.get("cell") == "rnn":
            tips.append("model.cell=lstm or gru: gated cells keep gradients alive over time")
        if activation in ("sigmoid", "tanh"):
            tips.append("model.activation=relu (or gelu, elu, leaky_relu): they do not saturate")
        if init in ("default", "uniform", "normal", "zeros"):
            scaled = "xavier_normal" if activation in ("sigmoid", "tanh") else "kaiming_normal"
            tips.append(f"model.init={scaled}: an init scaled to the layer width")
        if mlp and model.get("norm", "none") == "none":
            tips.append("model.norm=batch or layer: normalisation between layers")
        if mlp and not model.get("residual", True):
            tips.append("model.residual=true: identity skips carry the gradient past layers")
        if model.get("depth", 0) > 4:
            tips.append(f"a shallower net (model.depth={model['depth']} now)")
        if model.get("layers", 0) > 2:
            tips.append(f"fewer recurrent layers (model.layers={model['layers']} now)")
    elif verdict == "exploding":
        if not clip:
            tips.append("trainer.gradient_clip_val=1.0: gradient clipping")
        if lr is not None:
            tips.append(f"optimizer.lr={lr / 10:g}: a lower learning rate (now {lr:g})")
        if init in ("normal", "uniform"):
            tips.append("model.init=kaiming_normal or xavier_normal: scaled to the layer width")
        if mlp and model.get("norm", "none") == "none":
            tips.append("model.norm=batch or layer: normalisation between layers")
        if model.get("cell") == "rnn":
            tips.append("model.cell=lstm or gru: gated cells")
    return tips


class GradHealth(L.Callback):
    """Every `every_n_steps` optimiser steps: each layer's gradient norm (before clipping) and
    weight norm, logged as grad_norm/<layer> and weight_norm/<layer>. At each epoch's end: a
    verdict from that epoch's samples, printed once with remedies; at the end a PNG and a
    `grad_health` entry for metrics.json.

    For sequence inputs (batch, time, features) it also measures the loss gradient with respect
    to the first and the last time step's input: recurrent nets without gates lose the first.
    """

    def __init__(
        self,
        enabled: bool = True,
        every_n_steps: int = 10,
        vanishing_ratio: float = 1e-2,
        exploding_norm: float = 1e3,
        plot: bool | str = "auto",
        out_dir: str | None = None,
        model: dict | None = None,
    ):
        self.enabled, self.every = enabled, every_n_steps
        self.vanishing_ratio, self.exploding_norm = vanishing_ratio, exploding_norm
        self.plot, self.out_dir = plot, Path(out_dir) if out_dir else None
        self.model_cfg = dict(model or {})
        self.history: list[dict] = []  # {step, epoch, grad: {layer: norm}, weight: {...}}
        self.epochs: list[dict] = []  # per-epoch summary and verdict
        self.warned = self.recovered = False
        self.fitting = False

    def setup(self, trainer, pl_module, stage: str) -> None:
        self.fitting = stage == "fit"

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        if not self.enabled or trainer.global_step % self.every:
            return
        net = pl_module.net
        grads = {k.split("/", 1)[1]: v for k, v in grad_norm(net, 2).items() if "/" in k}
        weights = {n: p.detach().norm() for n, p in net.named_parameters()}
        # One transfer for all norms: a .item() per tensor would sync a GPU once per parameter.
        values = torch.stack([*grads.values(), *weights.values()]).tolist()
        record = {
            "step": trainer.global_step,
            "epoch": trainer.current_epoch,
            "grad": layer_norms(dict(zip(grads, values[: len(grads)], strict=True))),
            "weight": layer_norms(dict(zip(weights, values[len(grads) :], strict=True))),
        }
        if not record["grad"]:
            return
        self.history.append(record)
        metrics = {f"grad_norm/{k}": v for k, v in record["grad"].items()}
        metrics.update({f"weight_norm/{k}": v for k, v in record["weight"].items()})
        metrics["grad_norm/ratio_first_last"] = _ratio(record["grad"])
        for logger in trainer.loggers:
            logger.log_metrics(metrics, step=trainer.global_step)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        x, y = batch
        # (batch, time, features) of numbers: a dict of token ids has no time-step gradient
        sequence = torch.is_tensor(x) and x.ndim == 3 and x.is_floating_point()
        if not self.enabled or not sequence or not self.history:
            return
        if self.history[-1]["step"] != trainer.global_step - 1 or "time" in self.history[-1]:
            return  # measure time steps on the batches whose layer norms were just taken
        self.history[-1]["time"] = _time_step_grads(pl_module, x, y)

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        samples = [r for r in self.history if r["epoch"] == trainer.current_epoch]
        if not self.enabled or not samples:
            return
        ratios = [_ratio(r["grad"]) for r in samples]
        finite = [r for r in ratios if math.isfinite(r)]
        peak = max(max(r["grad"].values()) for r in samples)
        summary = {
            "epoch": trainer.current_epoch + 1,
            "grad_ratio_first_last": _geomean(finite) if finite else None,
            "max_grad_norm": peak if math.isfinite(peak) else None,
        }
        if times := [r["time"] for r in samples if "time" in r]:
            summary["grad_ratio_first_last_step"] = _geomean([t["ratio"] for t in times])
        summary["verdict"] = self._verdict(summary, len(finite) < len(ratios))
        self.epochs.append(summary)
        if not trainer.is_global_zero:
            return
        if summary["verdict"] != "healthy" and not self.warned:
            self.warned = True
            log.warning(self._advice(summary, trainer))
        elif summary["verdict"] == "healthy" and self.warned and not self.recovered:
            # Gated cells start with a closed memory and open it as they learn.
            self.recovered = True
            log.warning("gradient health: gradients flow again at epoch %d", summary["epoch"])

    def _verdict(self, summary: dict, non_finite: bool) -> str:
        peak = summary["max_grad_norm"]
        if non_finite or peak is None or peak > self.exploding_norm:
            return "exploding"
        ratio = summary.get("grad_ratio_first_last_step", summary["grad_ratio_first_last"])
        if ratio is not None and ratio < self.vanishing_ratio:
            return "vanishing"
        return "healthy"

    def _advice(self, summary: dict, trainer) -> str:
        verdict = summary["verdict"]
        if verdict == "vanishing":
            over_time = "grad_ratio_first_last_step" in summary
            what = "first time step's input" if over_time else "first hidden layer"
            ratio = summary.get("grad_ratio_first_last_step", summary["grad_ratio_first_last"])
            text = (
                f"vanishing gradients at epoch {summary['epoch']}: the {what} gets "
                f"{ratio:.1e} × the gradient norm of the "
                f"{'last step' if over_time else 'last layer'} "
                f"(callbacks.grad_health.vanishing_ratio={self.vanishing_ratio:g})"
            )
        else:
            peak = summary["max_grad_norm"]
            text = (
                f"exploding gradients at epoch {summary['epoch']}: a layer's gradient norm "
                + (f"reached {peak:.3g}" if peak is not None else "became NaN or inf")
                + f" (callbacks.grad_health.exploding_norm={self.exploding_norm:g})"
            )
        lr = trainer.optimizers[0].param_groups[0]["lr"] if trainer.optimizers else None
        dead = summary.get("grad_ratio_first_last") == 0
        tips = remedies(verdict, self.model_cfg, trainer.gradient_clip_val, lr, dead)
        return "gradient health: " + text + "".join(f"\n  - try {t}" for t in tips)

    def on_exception(self, trainer, pl_module, exception: BaseException) -> None:
        """A NaN / inf loss stopped training (deeptune.callbacks): that is an explosion too."""
        if self.enabled and type(exception).__name__ == "NonFiniteLoss":
            summary = {"epoch": trainer.current_epoch + 1, "max_grad_norm": None}
            self.epochs.append(summary | {"grad_ratio_first_last": None, "verdict": "exploding"})

    def on_fit_end(self, trainer, pl_module) -> None:
        verdict = self.report().get("grad_health", {}).get("verdict")
        if not (verdict and self.out_dir and trainer.is_global_zero and self._draws(verdict)):
            return
        # matplotlib and the figure cost ~0.4 s: with plot=auto, only when there is a problem.
        from deeptune.diagnostics.figures import grad_health_figure

        self.out_dir.mkdir(parents=True, exist_ok=True)
        grad_health_figure(self.history, verdict).savefig(self.out_dir / PLOT_FILE, dpi=110)
        for logger in trainer.loggers:
            if hasattr(logger, "log_image"):  # W&B
                logger.log_image(key="grad_health", images=[str(self.out_dir / PLOT_FILE)])

    def _draws(self, verdict: str) -> bool:
        return self.plot is True or (self.plot == "auto" and verdict != "healthy")

    def report(self) -> dict:
        """The `grad_health` entry of metrics.json."""
        if not self.enabled or not self.epochs:
            return {}
        # The state training ended in, but an explosion anywhere counts: it did damage.
        flagged = [e["epoch"] for e in self.epochs if e["verdict"] != "healthy"]
        exploded = any(e["verdict"] == "exploding" for e in self.epochs)
        verdict = "exploding" if exploded else self.epochs[-1]["verdict"]
        ratios = _finite(e["grad_ratio_first_last"] for e in self.epochs)
        peaks = _finite(e["max_grad_norm"] for e in self.epochs)
        entry = {
            "verdict": verdict,
            "epochs_flagged": flagged,
            "grad_ratio_first_last": _geomean(ratios) if ratios else None,
            "max_grad_norm": max(peaks) if peaks else None,  # None: it was not finite
            "layers": list(self.history[-1]["grad"]),
            "epochs": self.epochs,
        }
        if steps := [
            e["grad_ratio_first_last_step"]
            for e in self.epochs
            if "grad_ratio_first_last_step" in e
        ]:
            entry["grad_ratio_first_last_step"] = _geomean(steps)
        if self.out_dir and self._draws(verdict):
            entry["plot"] = PLOT_FILE
        return {"grad_health": entry}

    def state_dict(self) -> dict:  # a resumed run continues the same history and verdicts
        return {
            "history": self.history,
            "epochs": self.epochs,
            "warned": self.warned,
            "recovered": self.recovered,
        }

    def load_state_dict(self, state_dict: dict) -> None:
        if not self.fitting:  # testing the best checkpoint must not rewind the record
            return
        self.history = state_dict.get("history", [])
        self.epochs = state_dict.get("epochs", [])
        self.warned = state_dict.get("warned", False)
        self.recovered = state_dict.get("recovered", False)


def _ratio(norms: dict[str, float]) -> float:
    """First layer's gradient norm / last layer's (layers in the order the net defines them)."""
    values = list(norms.values())
    if len(values) < 2:
        return float("nan")
    first, last = values[0], values[-1]
    if not (math.isfinite(first) and math.isfinite(last)):
        return float("nan")
    return first / last if last > 0 else float("inf")


def _finite(values) -> list[float]:
    return [v for v in values if v is not None and math.isfinite(v)]


def _geomean(values: list[float]) -> float:
    """Ratios spanning decades average on a log scale; a zero ratio stays zero."""
    if any(v <= 0 for v in values):
        return 0.0
    return math.exp(sum(math.log(v) for v in values) / len(values))


def _time_step_grads(pl_module, x: torch.Tensor, y: torch.Tensor) -> dict:
    """‖∂loss/∂x_t‖ for the first and last time step of this batch.

    The extra forward / backward runs with the random state saved and restored, so dropout in
    training draws the same numbers with or without this measurement.
    """
    with torch.random.fork_rng(devices=[]), torch.enable_grad():
        x = x.detach().requires_grad_(True)
        loss = pl_module.loss(pl_module(x), y)
        (grad,) = torch.autograd.grad(loss, x)
    per_step = grad.norm(dim=(0, 2))
    first, last = per_step[0].item(), per_step[-1].item()
    return {"first": first, "last": last, "ratio": first / last if last > 0 else float("inf")}
