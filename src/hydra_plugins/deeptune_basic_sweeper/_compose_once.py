"""Each job's config composed once: the sweeper's up-front check hands its configs to the launcher.

Hydra's BasicSweeper composes every job of a batch before launching it (validate_batch_is_legal:
a bad override fails before any job runs), then the launcher composes each job again, ~145 ms a
time. ComposedOnce wraps the shared config loader (HydraContext.config_loader): configs composed
by the check are kept, keyed by their overrides, and the launcher's load_sweep_config takes each
one once (popped: every job gets its own object, as jobs set their own hydra.job fields). A
launcher that runs jobs in other processes takes the kept configs with `take` and sends them
(deeptune's joblib launcher); one that does not (submitit) gets the loader pickled without them
and composes there, as before.
"""

from collections import defaultdict, deque
from typing import Any

from omegaconf import DictConfig


class ComposedOnce:
    def __init__(self, loader: Any) -> None:
        self.loader = loader
        self.kept: dict[tuple, deque] = defaultdict(deque)
        self.composed = 0  # compositions done through this loader (for tests and logs)

    def compose(self, master_config: DictConfig, sweep_overrides: list[str]) -> None:
        config = self._load(master_config, sweep_overrides)
        self.kept[(id(master_config), tuple(sweep_overrides))].append(config)

    def load_sweep_config(self, master_config: DictConfig, sweep_overrides: list[str]):
        kept = self.take(master_config, sweep_overrides)
        return kept if kept is not None else self._load(master_config, sweep_overrides)

    def take(self, master_config: DictConfig, sweep_overrides: list[str]) -> DictConfig | None:
        """The config the check composed for these overrides, once; None if there is none."""
        kept = self.kept.get((id(master_config), tuple(sweep_overrides)))
        return kept.popleft() if kept else None

    def _load(self, master_config: DictConfig, sweep_overrides: list[str]) -> DictConfig:
        self.composed += 1
        return self.loader.load_sweep_config(master_config, list(sweep_overrides))

    def __getattr__(self, name: str) -> Any:  # the rest of the ConfigLoader interface
        if name == "loader":  # before __init__ (unpickling): no recursion
            raise AttributeError(name)
        return getattr(self.loader, name)

    def __getstate__(self) -> dict:
        return {"loader": self.loader, "kept": defaultdict(deque), "composed": 0}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
