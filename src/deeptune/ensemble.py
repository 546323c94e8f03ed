"""Ensembles of restarts: each member's best checkpoint predicts, the predictions combine.

Classification: mean_prob, mean_logit or majority_vote, scored by acc and f1. Regression: the
members' predictions are averaged (mean_logit: the mean of the raw outputs; the other two have
no meaning for numbers and are refused by config.check_task), scored by mse and r2.

`ensemble.yaml` in the run folder lists the method and the members, so
`python eval.py ckpt_path=<run>/ensemble.yaml` evaluates the same ensemble again.
"""

from pathlib import Path

import torch
import yaml
from omegaconf import DictConfig
from torchmetrics.functional import mean_squared_error, r2_score
from torchmetrics.functional.classification import multiclass_accuracy, multiclass_f1_score

from deeptune import builders

MANIFEST = "ensemble.yaml"


def member_outputs(cfg: DictConfig, ckpt: str, datamodule, splits) -> dict[str, torch.Tensor]:
    """One member's outputs on whole splits: logits, or predicted numbers (CPU, eval mode, no
    grad)."""
    model = builders.module(cfg, datamodule, pretrained=False)
    state = torch.load(ckpt, map_location="cpu", weights_only=True)["state_dict"]
    model.load_state_dict(state)
    model.eval()
    with torch.no_grad():
        return {s: model(datamodule.tensors[s][0].cpu()) for s in splits}


def combine(logits: torch.Tensor, method: str) -> torch.Tensor:
    """(members, samples, classes) logits -> predicted classes; (members, samples) predicted
    numbers -> their mean."""
    if logits.dim() == 2:  # regression
        return logits.mean(0)
    if method == "mean_prob":
        return logits.softmax(-1).mean(0).argmax(-1)
    if method == "mean_logit":
        return logits.mean(0).argmax(-1)
    # majority_vote: torch.mode breaks ties towards the smallest class index.
    return logits.argmax(-1).mode(0).values


def evaluate(method: str, members: list[tuple[DictConfig, str]], table, splits) -> dict:
    """{split: {acc, f1}} (or {mse, r2} for regression) of the combined members; all share the
    first member's data split."""
    datamodule = builders.datamodule(members[0][0], table)
    datamodule.setup()
    per_member = [member_outputs(cfg, ckpt, datamodule, splits) for cfg, ckpt in members]
    out = {}
    for split in splits:
        preds = combine(torch.stack([m[split] for m in per_member]), method)
        y, k = datamodule.tensors[split][1].cpu(), datamodule.num_classes
        if datamodule.task == "regression":
            out[split] = {
                "mse": float(mean_squared_error(preds, y)),
                "r2": float(r2_score(preds, y)),
            }
            continue
        out[split] = {
            "acc": float(multiclass_accuracy(preds, y, k, average="micro")),
            "f1": float(multiclass_f1_score(preds, y, k, average="macro")),
        }
    return out


def save_manifest(out_dir: Path, method: str, ckpts: list[str]) -> Path:
    """Member paths relative to the run folder, so the folder can move."""
    members = [str(Path(c).resolve().relative_to(out_dir.resolve())) for c in ckpts]
    path = out_dir / MANIFEST
    path.write_text(yaml.safe_dump({"method": method, "members": members}, sort_keys=False))
    return path


def load_manifest(path: Path) -> tuple[str, list[Path]]:
    manifest = yaml.safe_load(path.read_text())
    return manifest["method"], [path.parent / m for m in manifest["members"]]
