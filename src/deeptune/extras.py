"""The optional extras of `pip install "deeptune[...]"`: which module each feature needs, and the
one-line error that names the install command when the feature is used without it."""

import importlib.util

from deeptune.errors import ConfigError

# extra -> the module whose absence means the extra is not installed
EXTRAS = {
    "cmaes": "cmaes",
    "dashboard": "optuna_dashboard",
    "mlflow": "mlflow",
    "parquet": "pyarrow",
    "slurm": "hydra_plugins.hydra_submitit_launcher",
}
# hydra/launcher choices -> the extra they need
LAUNCHER_EXTRAS = {
    name: "slurm" for name in ("slurm", "slurm_local", "submitit_slurm", "submitit_local")
}


def installed(extra: str) -> bool:
    try:
        return importlib.util.find_spec(EXTRAS[extra]) is not None
    except ModuleNotFoundError:  # a parent package is missing
        return False


def install_hint(extra: str) -> str:
    return f'pip install "deeptune[{extra}]"'


def require(extra: str, key: str, value: object, feature: str) -> None:
    """Raise the one-line error for `key=value` when `extra` is not installed."""
    if not installed(extra):
        raise ConfigError(key, value, f"{feature} needs the {extra} extra: {install_hint(extra)}")
