"""A trained model as a predictor of raw rows: `deeptune.load(path).predict(x)`.

The rows are scaled with the training split's scaler that the checkpoint holds
(deeptune.run.portable), a DataFrame's columns are matched to the training features by name, and
the network's outputs come back as class labels, class probabilities or predicted numbers. An
ensemble (its ensemble.yaml) combines its members as training did (deeptune.run.ensemble).
"""

from pathlib import Path

import numpy as np
import torch

from deeptune.data.datamodule import scale
from deeptune.errors import ConfigError

BATCH = 8192  # rows per forward pass: memory stays flat whatever the input's length


class Predictor:
    """`members`: LightningModules with the same `deeptune_state`; `method`: how an ensemble
    combines them (one member: mean_prob, i.e. the softmax)."""

    def __init__(self, members: list, method: str = "mean_prob"):
        self.members, self.method = members, method
        self.state = members[0].deeptune_state
        self.task, self.classes = self.state["task"], list(self.state["classes"])
        self.features = list(self.state["features"] or [])
        self.input_shape = tuple(self.state["input_shape"])
        # A component data module's fitted state (deeptune.run.portable); None: the tensor path
        self.component = self.state.get("datamodule")
        self._datamodule = None

    def raw(self, x, key: str = "x", ignore=()) -> np.ndarray:
        """Raw features in training order: a DataFrame's columns matched by name (`ignore`d
        columns and the training target aside), an array's shape checked."""
        if hasattr(x, "columns"):
            if len(self.input_shape) != 1:
                raise ConfigError(key, "a table", "a sequence model reads (n, steps, features)")
            ignore = {*ignore, self.state.get("target")}  # a labelled table predicts too
            check_columns([str(c) for c in x.columns], self.features, key, ignore)
            x = x[self.features].to_numpy()
        x = np.asarray(x)
        if x.shape[1:] != self.input_shape or not np.issubdtype(x.dtype, np.number):
            shape = ", ".join(str(d) for d in self.input_shape)
            raise ConfigError(key, f"shape {x.shape}", f"need numbers of shape (n, {shape})")
        if not np.isfinite(x).all():  # a NaN would come back as a silent NaN prediction
            raise ConfigError(key, "NaN or inf", "rows with missing values: impute or drop them")
        return x

    def outputs(self, x, key: str = "x", ignore=()) -> torch.Tensor:
        """(members, n, classes) logits, or (members, n) predicted numbers."""
        if self.component is not None:
            return self._component_outputs(x, key)
        x = torch.from_numpy(scale(self.raw(x, key, ignore), self.state["scaler"]))
        with torch.no_grad():
            return torch.stack([torch.cat([m(b) for b in x.split(BATCH)]) for m in self.members])

    def datamodule(self):
        """The component data module, rebuilt from the saved config with its fitted state
        restored (never set up: the training data need not be here)."""
        if self._datamodule is None:
            from omegaconf import OmegaConf

            from deeptune import builders

            cfg = OmegaConf.create(self.state["config"])
            dm = builders.component_module(cfg)
            dm.load_state_dict(self.component.get("state") or {})
            self._datamodule = dm
        return self._datamodule

    def network_inputs(self, x, key: str = "x"):
        """What the network reads: a tensor (n, *input_shape) or a dict of tensors as given, or
        raw inputs through the data module's `predict_inputs(raw)`."""
        if not (torch.is_tensor(x) or _is_tensor_dict(x)):
            dm = self.datamodule()
            if not callable(getattr(dm, "predict_inputs", None)):
                raise ConfigError(
                    key,
                    type(x).__name__,
                    f"{type(dm).__name__} has no predict_inputs(raw) to turn raw inputs into "
                    "network inputs: pass a tensor of shape (n, "
                    f"{', '.join(map(str, self.input_shape))}) or a dict of tensors",
                )
            x = dm.predict_inputs(x)
        if torch.is_tensor(x) and tuple(x.shape[1:]) != self.input_shape:
            shape = ", ".join(str(d) for d in self.input_shape)
            raise ConfigError(
                key, f"shape {tuple(x.shape)}", f"need a tensor of shape (n, {shape})"
            )
        return x

    def _component_outputs(self, x, key: str) -> torch.Tensor:
        x = self.network_inputs(x, key)
        if torch.is_tensor(x):
            batches = x.split(BATCH)
        else:  # a dict of tensors, cut along the batch axis together
            names = list(x)
            batches = [
                dict(zip(names, b, strict=True))
                for b in zip(*(x[n].split(BATCH) for n in names), strict=True)
            ]
        with torch.no_grad():
            return torch.stack([torch.cat([m(b) for b in batches]) for m in self.members])

    def proba_of(self, logits: torch.Tensor) -> np.ndarray:
        from deeptune.run.ensemble import probabilities

        return probabilities(logits, self.method).numpy()

    def predict_of(self, logits: torch.Tensor) -> np.ndarray:
        from deeptune.run.ensemble import combine

        combined = combine(logits, self.method)
        if self.task == "regression":
            return combined.numpy()
        return np.asarray(self.classes, dtype=object)[combined.numpy()]

    def predict(self, x) -> np.ndarray:
        """Class labels (the training labels, as text), or predicted numbers."""
        return self.predict_of(self.outputs(x))

    def predict_proba(self, x) -> np.ndarray:
        """(n, classes) probabilities, columns in the order of `classes`."""
        if self.task == "regression":
            raise TypeError("a regression predicts numbers: use predict(x)")
        return self.proba_of(self.outputs(x))

    def frame(self, x, ignore=(), key: str = "input"):
        """A DataFrame: `prediction`, then `prob_<class>` per class for a classifier."""
        import pandas as pd

        logits = self.outputs(x, key, ignore)
        out = pd.DataFrame({"prediction": self.predict_of(logits)})
        if self.task != "regression":
            probs = self.proba_of(logits)
            for i, name in enumerate(self.classes):
                out[f"prob_{name}"] = probs[:, i]
        return out

    def score(self, x, y: np.ndarray) -> dict[str, float]:
        """The metrics the model logged in training, the `metrics` group's included (and, for
        one model, its loss) on raw rows `x` with targets `y` (class indices in the training
        order, or numbers)."""
        from deeptune.metrics import flatten, task_metrics
        from deeptune.run.ensemble import scored

        logits = self.outputs(x, "data.source")
        target = torch.from_numpy(np.asarray(y))
        single = len(self.members) == 1  # scored on the logits, as trainer.test does
        preds = logits[0] if single else scored(logits, self.method)
        outputs = 1 if self.task == "regression" else len(self.classes)
        metrics = task_metrics(self.task, outputs, self.state["config"].get("metrics"))
        values = flatten(metrics(preds, target), self.classes, outputs)
        figures = {name: float(value) for name, value in values.items()}
        if single:
            figures["loss"] = float(self.members[0].loss(logits[0], target))
        return figures


def _is_tensor_dict(x) -> bool:
    return isinstance(x, dict) and bool(x) and all(torch.is_tensor(v) for v in x.values())


def check_columns(columns: list[str], features: list[str], key: str, ignore=(), value=None) -> None:
    """One line naming the missing and the extra columns, if the table's are not `features`."""
    missing = [f for f in features if f not in columns]
    extra = [c for c in columns if c not in features and c not in ignore]
    if missing or extra:
        parts = [f"missing {missing}" if missing else "", f"extra {extra}" if extra else ""]
        raise ConfigError(
            key,
            value if value is not None else f"{len(columns)} columns",
            "its columns do not match the training features: " + "; ".join(p for p in parts if p),
        )


def load(path, trust_config: bool = False) -> Predictor:
    """The model of a checkpoint (best.ckpt, copied anywhere) or an ensemble (its ensemble.yaml),
    in eval mode on the CPU. trust_config=True: its saved config may name any target."""
    from deeptune import trust
    from deeptune.run.portable import load_module

    path = Path(path).expanduser()
    with trust.trusting(trust_config):
        if path.suffix in (".yaml", ".yml"):
            from deeptune.run.ensemble import load_manifest

            method, ckpts = load_manifest(path)
            return Predictor([load_module(c) for c in ckpts], method)
        return Predictor([load_module(path)])
