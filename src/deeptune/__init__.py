"""deeptune: every practical knob of neural-network training one config choice away."""

__version__ = "0.1.0"


def load(path, trust_config: bool = False):
    """The model of a checkpoint or of an ensemble.yaml, with predict(x) / predict_proba(x) on
    raw rows (deeptune.predictor). Imports torch on first use only."""
    from deeptune.predictor import load as _load

    return _load(path, trust_config=trust_config)
