"""The final model's report (`report.confusion=true`, `report.tsne=true`): confusion matrix,
per-class precision / recall / F1 with macro and weighted averages, and a t-SNE of a hidden
layer's activations, all on the test split (the validation split when `test=false`).

torchmetrics computes the numbers, scikit-learn the embedding; matplotlib draws.
"""

import logging
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig
from rich.console import Console
from rich.table import Table

from deeptune.builders import class_names
from deeptune.errors import ConfigError

log = logging.getLogger(__name__)

CONFUSION_FILE, TSNE_FILE = "confusion_matrix.png", "tsne.png"


def hooked_module(net: torch.nn.Module, layer: str | None) -> tuple[torch.nn.Module, bool]:
    """The module whose activations t-SNE embeds, and whether to take its input (the head's input
    is the last hidden representation) rather than its output."""
    modules = dict(net.named_modules())
    if layer is None and isinstance(getattr(net, "head", None), torch.nn.Module):
        return net.head, True
    if layer not in modules or not layer:
        if layer is None:  # a network of the user's without a `head`: name a layer instead
            names = [n for n in modules if n and n.count(".") <= 1]
            raise ConfigError(
                "report.tsne_layer",
                None,
                f"{type(net).__name__} has no `head` module whose input t-SNE embeds: name a "
                "module, e.g. report.tsne_layer=" + (names[-1] if names else "<name>"),
            )
        names = [n for n in modules if n and n.count(".") <= 1]
        raise ConfigError(
            "report.tsne_layer", layer, "a module of the network: " + ", ".join(names)
        )
    return modules[layer], False


def predict(model, x, batch_size: int, layer: str | None):
    """Outputs and the chosen layer's activations (flattened) over x, in eval mode. `x`: a
    tensor, split into batches of `batch_size`, or an iterable of batches (a component data
    module's loader, its inputs already on the model's device)."""
    module, take_input = hooked_module(model.net, layer)
    captured = []

    def keep(_module, args, output=None):
        value = args[0] if take_input else output
        value = value[0] if isinstance(value, tuple) else value  # a recurrent layer's (out, h)
        captured.append(value.detach().flatten(1).cpu())

    hook = (
        module.register_forward_pre_hook(keep) if take_input else module.register_forward_hook(keep)
    )
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            batches = x.split(batch_size) if torch.is_tensor(x) else x
            outputs = torch.cat([model(xb).cpu() for xb in batches])
    finally:
        hook.remove()
        model.train(was_training)
    return outputs, torch.cat(captured)


def classification_report(preds: torch.Tensor, y: torch.Tensor, classes: list[str]) -> dict:
    """Per-class precision / recall / F1 / support, macro and weighted averages, accuracy and
    the confusion matrix (rows: true class, columns: predicted), as plain numbers."""
    from torchmetrics.functional.classification import (
        multiclass_accuracy,
        multiclass_confusion_matrix,
        multiclass_f1_score,
        multiclass_precision,
        multiclass_recall,
    )

    k = len(classes)
    metrics = {
        "precision": multiclass_precision,
        "recall": multiclass_recall,
        "f1": multiclass_f1_score,
    }
    support = torch.bincount(y, minlength=k)
    per_class = {n: f(preds, y, k, average="none") for n, f in metrics.items()}
    report = {
        "classes": {
            name: {n: float(v[i]) for n, v in per_class.items()} | {"support": int(support[i])}
            for i, name in enumerate(classes)
        }
    }
    for average in ("macro", "weighted"):
        report[average] = {n: float(f(preds, y, k, average=average)) for n, f in metrics.items()}
        report[average]["support"] = int(support.sum())
    report["accuracy"] = float(multiclass_accuracy(preds, y, k, average="micro"))
    report["confusion_matrix"] = multiclass_confusion_matrix(preds, y, k).tolist()
    return report


def print_report(report: dict, split: str) -> None:
    table = Table(title=f"per-class figures on the {split} split", header_style="bold")
    for name in ("class", "precision", "recall", "f1", "support"):
        table.add_column(name, justify="left" if name == "class" else "right")
    rows = list(report["classes"].items())
    for i, (name, row) in enumerate(rows):
        table.add_row(
            name,
            *(f"{row[n]:.4f}" for n in ("precision", "recall", "f1")),
            str(row["support"]),
            end_section=i == len(rows) - 1,
        )
    for average in ("macro", "weighted"):
        row = report[average]
        table.add_row(
            f"{average} avg",
            *(f"{row[n]:.4f}" for n in ("precision", "recall", "f1")),
            str(row["support"]),
        )
    table.caption = f"accuracy {report['accuracy']:.4f}"
    Console().print(table)


def confusion_figure(matrix: list[list[int]], classes: list[str], split: str):
    """torchmetrics' own plot of its confusion matrix, counts in the cells."""
    from matplotlib.figure import Figure
    from torchmetrics.utilities.plot import plot_confusion_matrix

    size = 3 + 0.45 * len(classes)
    fig = Figure(figsize=(size, size), layout="constrained")
    _, ax = plot_confusion_matrix(torch.tensor(matrix), ax=fig.subplots(), labels=classes)
    ax.set_title(f"confusion matrix ({split} split)")
    ax.set(xlabel="predicted class", ylabel="true class")
    return fig


def tsne(features: np.ndarray, seed: int, perplexity: float) -> np.ndarray:
    from sklearn.manifold import TSNE

    perplexity = min(perplexity, (len(features) - 1) / 3)  # t-SNE needs perplexity < n
    return TSNE(2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(features)


def final_report(cfg: DictConfig, model, datamodule, out_dir: Path, loggers) -> dict:
    """The `report` entry of metrics.json; PNGs in the run folder (and in W&B when it logs)."""
    opts = cfg.report
    split = "test" if cfg.get("test") else "val"
    classes = class_names(datamodule)
    if hasattr(datamodule, "tensors"):
        x, y = datamodule.tensors[split]
        batch_size = cfg.data.eval_batch_size
    else:  # a component data module: its own loader, batched as it batches
        x, y = _loader_inputs(datamodule, split, model.device)
        batch_size = None
    outputs, features = predict(model, x, batch_size, opts.get("tsne_layer"))
    y = y.cpu()
    out: dict = {"split": split}
    images = {}
    if opts.confusion and classes:
        preds = outputs.argmax(-1)
        out.update(classification_report(preds, y, classes))
        print_report(out, split)
        fig = confusion_figure(out["confusion_matrix"], classes, split)
        fig.savefig(out_dir / CONFUSION_FILE, dpi=110, bbox_inches="tight")
        images["confusion_matrix"] = out["confusion_png"] = CONFUSION_FILE
    if opts.tsne:
        rng = np.random.default_rng(cfg.seed)
        n = min(len(y), opts.tsne_samples)
        pick = np.sort(rng.choice(len(y), n, replace=False))
        points = tsne(features[pick].numpy(), cfg.seed, opts.tsne_perplexity)
        wrong = (outputs.argmax(-1) != y).numpy()[pick] if classes else np.zeros(n, bool)
        where = opts.get("tsne_layer") or "the last hidden layer"
        from deeptune.diagnostics.figures import tsne_figure

        fig = tsne_figure(points, y.numpy()[pick], wrong, classes, f"t-SNE of {where} ({split})")
        fig.savefig(out_dir / TSNE_FILE, dpi=110)
        images["tsne"] = out["tsne_png"] = TSNE_FILE
        out["tsne_samples"] = n
    _to_wandb(loggers, out, images, out_dir)
    log.info("final-model report: %s", ", ".join(str(out_dir / f) for f in images.values()))
    return out


def _loader_inputs(datamodule, split: str, device):
    """(the inputs of every batch of `split`, on `device`; their targets, concatenated)."""
    from lightning.fabric.utilities.apply_func import move_data_to_device

    from deeptune.data.component import split_batches

    xs, ys = [], []
    for xb, yb in split_batches(datamodule, split):
        xs.append(move_data_to_device(xb, device))
        ys.append(yb.cpu())
    return xs, torch.cat(ys)


def _to_wandb(loggers, report: dict, images: dict, out_dir: Path) -> None:
    for logger in loggers:
        if type(logger).__name__ != "WandbLogger":
            continue
        for key, name in images.items():
            logger.log_image(key=f"report/{key}", images=[str(out_dir / name)])
        if "classes" in report:
            columns = ["class", "precision", "recall", "f1", "support"]
            rows = [[c, *(r[n] for n in columns[1:])] for c, r in report["classes"].items()]
            logger.log_table(key="report/per_class", columns=columns, data=rows)
