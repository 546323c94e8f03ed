"""Ensembles of restarts: each member's best checkpoint predicts, the predictions combine.

Classification: mean_prob, mean_logit or majority_vote; regression: the members' predictions
are averaged (mean_logit: the mean of the raw outputs; the other two have no meaning for numbers
and are refused by deeptune.config). The combined class probabilities (or numbers) are scored by
the metrics the members logged, the task's and the `metrics` group's, the same torchmetrics
objects (deeptune.metrics.task_metrics).

`ensemble.yaml` in the run folder lists the method and the members, so
`python eval.py ckpt_path=<run>/ensemble.yaml` evaluates the same ensemble again.
"""

from pathlib import Path

import torch
import yaml

from deeptune import trust
from deeptune.builders import class_names
from deeptune.data.component import contract, outputs_and_targets
from deeptune.errors import ConfigError
from deeptune.metrics import flatten, task_metrics
from deeptune.run.saved import load_run

MANIFEST = "ensemble.yaml"


def member_outputs(model, datamodule, splits) -> dict[str, torch.Tensor]:
    """One member's outputs on whole splits: logits, or predicted numbers (eval mode, no grad)."""
    if not hasattr(datamodule, "tensors"):  # a component data module: its own loaders
        return {s: outputs_and_targets(model, datamodule, s)[0] for s in splits}
    with torch.no_grad():
        return {s: model(datamodule.tensors[s][0].cpu()) for s in splits}


def split_outputs(models, datamodule, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(members, samples, ...) outputs of every member and the split's targets. A component
    module's loader is walked once for all members, so a loader that shuffles or augments still
    pairs each member's output with the others' and with its target."""
    if hasattr(datamodule, "tensors"):
        outs = [member_outputs(m, datamodule, [split])[split] for m in models]
        return torch.stack(outs), datamodule.tensors[split][1].cpu()
    outs, y = outputs_and_targets(
        lambda x: torch.stack([m(x) for m in models], dim=1), datamodule, split
    )
    return outs.transpose(0, 1), y


def probabilities(logits: torch.Tensor, method: str) -> torch.Tensor:
    """(members, samples, classes) logits -> (samples, classes) combined class probabilities:
    the mean softmax, the softmax of the mean logit, or the share of members voting for each."""
    if method == "mean_logit":
        return logits.mean(0).softmax(-1)
    if method == "majority_vote":
        return torch.nn.functional.one_hot(logits.argmax(-1), logits.shape[-1]).float().mean(0)
    return logits.softmax(-1).mean(0)


def scored(logits: torch.Tensor, method: str) -> torch.Tensor:
    """What the metrics score: the combined class probabilities (AUROC needs them, accuracy
    takes their argmax, as `combine` does), or the mean of the predicted numbers."""
    return logits.mean(0) if logits.dim() == 2 else probabilities(logits, method)


def combine(logits: torch.Tensor, method: str) -> torch.Tensor:
    """(members, samples, classes) logits -> predicted classes (a tied vote: the smallest class
    index); (members, samples) predicted numbers -> their mean."""
    if logits.dim() == 2:  # regression
        return logits.mean(0)
    return probabilities(logits, method).argmax(-1)


def evaluate(method: str, ckpts: list[Path], splits, data=None) -> dict:
    """{split: {metric: value}} of the combined members; all share the first member's split.
    `data`: the run's data (builders.data), when the caller has it."""
    first = load_run(ckpts[0], ckpt=ckpts[0], data=data)
    members = [first] + [
        load_run(c, ckpt=c, data=first.data, datamodule=first.datamodule) for c in ckpts[1:]
    ]
    dm, out = first.datamodule, {}
    spec = contract(dm)  # task, classes, outputs: a component module's read as the net's were
    for split in splits:
        logits, y = split_outputs([m.model for m in members], dm, split)
        preds = scored(logits, method)
        metrics = task_metrics(spec.task, spec.num_outputs, first.cfg.get("metrics"))
        values = flatten(metrics(preds, y), class_names(spec), spec.num_outputs)
        out[split] = {name: float(value) for name, value in values.items()}
    return out


def save_manifest(out_dir: Path, method: str, ckpts: list[Path]) -> Path:
    """Member paths relative to the run folder, so the folder can move."""
    members = [str(Path(c).resolve().relative_to(out_dir.resolve())) for c in ckpts]
    path = out_dir / MANIFEST
    path.write_text(yaml.safe_dump({"method": method, "members": members}, sort_keys=False))
    return path


def load_manifest(path: Path) -> tuple[str, list[Path]]:
    manifest = yaml.safe_load(path.read_text())
    if not (isinstance(manifest, dict) and {"method", "members"} <= set(manifest)):
        raise ConfigError("ckpt_path", str(path), "not an ensemble manifest (method, members)")
    method, ckpts = manifest["method"], [path.parent / str(m) for m in manifest["members"]]
    for ckpt in ckpts:
        trust.check_member(ckpt, path.parent, path)
        if not ckpt.is_file():
            raise ConfigError("ckpt_path", str(path), f"its member {ckpt} does not exist")
    return method, ckpts
