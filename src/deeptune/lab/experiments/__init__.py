"""The experiments, in the order of the lab's index: one module each, with its sweeps, its
analysis and a `verdict` that is a pure function of a results DataFrame."""

from deeptune.lab.experiment import Experiment
from deeptune.lab.experiments import (
    batch_size,
    depth,
    initialization,
    learning_rate,
    normalization,
    optimizers,
    recurrent,
    regularization,
    residual,
    restarts_ensembles,
    search_strategies,
    shuffling,
    vanishing_gradients,
)

MODULES = (
    depth,
    vanishing_gradients,
    initialization,
    normalization,
    regularization,
    optimizers,
    learning_rate,
    batch_size,
    search_strategies,
    restarts_ensembles,
    recurrent,
    shuffling,
    residual,
)
EXPERIMENTS: dict[str, Experiment] = {m.EXPERIMENT.name: m.EXPERIMENT for m in MODULES}
NAMES = tuple(EXPERIMENTS)
