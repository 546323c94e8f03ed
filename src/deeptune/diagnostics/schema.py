"""The schema of the diagnostics: the gradient-health callback (configs/callbacks/default.yaml),
the debug presets' callbacks (configs/debug/*.yaml) and the final-model report (`report.*`)."""

from typing import Literal

from deeptune.errors import ConfigError
from deeptune.schema import (
    Fraction,
    Int,
    MetricKey,
    Name,
    Node,
    Path,
    PosFloat,
    PosInt,
    Section,
    schema,
)


@schema("deeptune.diagnostics.grad_health.GradHealth")
class GradHealthNode(Node):
    enabled: bool = None
    every_n_steps: PosInt = None
    vanishing_ratio: Fraction = None
    exploding_norm: PosFloat = None
    plot: bool | Literal["auto"] = None
    out_dir: Path | None = None
    model: dict | None = None  # the model's config, read for advice (not built)


@schema("deeptune.diagnostics.lr_find.LRFind")
class LRFindNode(Node):
    out_dir: Path = None
    apply: bool = None
    min_lr: PosFloat = None
    max_lr: PosFloat = None
    num_training_steps: Int(ge=5, le=1_000_000) = None
    mode: Literal["exponential", "linear"] = None
    early_stop_threshold: PosFloat | None = None

    def check(self, key: str) -> None:
        low, high = self.min_lr or 1e-8, self.max_lr or 1.0
        if low >= high:
            raise ConfigError(f"{key}.min_lr", low, f"must be below {key}.max_lr={high:g}")


@schema("deeptune.diagnostics.overfit.OverfitCheck")
class OverfitCheckNode(Node):
    threshold: PosFloat = None
    monitor: MetricKey = None


class ReportSection(Section):
    """`report.*`: figures of the final (kept) model."""

    confusion: bool
    tsne: bool
    tsne_layer: Name | None
    tsne_samples: Int(ge=10, le=100_000)
    tsne_perplexity: PosFloat
