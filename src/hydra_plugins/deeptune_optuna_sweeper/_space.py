"""The search space: Hydra sweep overrides in, Optuna distributions out, and back to overrides.

    choice(a, b, c)  or  a,b,c          CategoricalDistribution
    range(1, 5)      (stop excluded)    IntDistribution(1, 4, step=1)
    range(0.1, 0.5, 0.1)                FloatDistribution(0.1, 0.4, step=0.1)
    interval(0.0, 0.5)                  FloatDistribution(0.0, 0.5)
    int(interval(1, 64))                IntDistribution(1, 64)
    tag(log, interval(1e-4, 1e-1))      FloatDistribution(1e-4, 1e-1, log=True)
    key=value                           fixed: the same in every trial

A range means what it means to Hydra's basic sweeper: Python's range, the stop excluded.
"""

from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override, Transformer
from hydra.errors import HydraException
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)

from .config import SweepError


@dataclass
class SearchSpace:
    distributions: dict[str, BaseDistribution]  # override key -> what Optuna samples
    grid_values: dict[str, list | None]  # override key -> its discrete values (None: interval)
    fixed: dict[str, str]  # override key -> the override as typed, passed to every trial

    def overrides(self, params: dict[str, Any]) -> list[str]:
        """One trial's overrides: the fixed ones, then the sampled values."""
        sampled = [f"{key}={format_value(value)}" for key, value in params.items()]
        return [*self.fixed.values(), *sampled]

    def grid(self) -> dict[str, list]:
        """GridSampler's search space: every key needs a finite list of values."""
        continuous = [key for key, values in self.grid_values.items() if values is None]
        if continuous:
            raise SweepError(
                f"sampler=grid needs discrete values, but {', '.join(continuous)} "
                "is an interval: use choice(...) or range(...)"
            )
        return dict(self.grid_values)

    def first_point(self) -> dict[str, Any]:
        """A valid value for every key (the lowest / first), to check the overrides compose."""
        return {key: _first(dist) for key, dist in self.distributions.items()}


def parse(lines: list[str]) -> SearchSpace:
    """Read override strings; for a key given twice, the later one wins (command line last)."""
    try:
        overrides = OverridesParser.create().parse_overrides(lines)
    except HydraException as err:
        raise SweepError(f"hydra.sweeper: {err}") from None
    space = SearchSpace({}, {}, {})
    for override in overrides:
        key = override.get_key_element()
        for table in (space.distributions, space.grid_values, space.fixed):
            table.pop(key, None)
        if override.is_sweep_override():
            try:
                space.distributions[key] = distribution(override)
            except ValueError as err:  # Optuna's checks: low > high, log of a value <= 0, ...
                raise SweepError(f"search space {override.input_line!r}: {err}") from None
            space.grid_values[key] = _discrete_values(override)
        else:
            space.fixed[key] = override.input_line
    return space


def custom_space(path: str | None, config, space: SearchSpace) -> Callable | None:
    """hydra.sweeper.custom_search_space, as the official plugin has it: the user's
    `f(cfg, trial) -> None`, called with the sweep's config once a trial's params are sampled.
    Whatever it suggests becomes an override as well (`trial.suggest_float("+w", ...)` adds a
    key); it may read `trial.params` to decide, which makes the space conditional. None: no
    such function."""
    if path is None:
        return None
    from hydra.utils import get_method

    try:
        function = get_method(path)
    except Exception as err:  # Hydra's ImportError / ValueError, several lines long
        lines = [line for line in str(err).splitlines() if line.strip()]
        reason = lines[min(1, len(lines) - 1)] if lines else type(err).__name__
        raise SweepError(
            f"hydra.sweeper.custom_search_space={path!r} is invalid: no function there "
            f"({reason.strip()}); give module.function, the module importable from here"
        ) from None

    def extend(trial) -> None:
        try:
            function(config, trial)
        except Exception as err:
            raise SweepError(
                f"hydra.sweeper.custom_search_space={path}: {type(err).__name__}: {err}"
            ) from None
        if overlap := sorted(set(trial.params) & set(space.fixed)):
            raise SweepError(
                f"hydra.sweeper.custom_search_space={path} suggests {', '.join(overlap)}, "
                "which the command line or hydra.sweeper.params fix: set each key in one place"
            )

    return extend


def distribution(override: Override) -> BaseDistribution:
    """The Optuna distribution for one sweep override."""
    sweep = override.value()
    if override.is_choice_sweep() or (override.is_range_sweep() and sweep.shuffle):
        return CategoricalDistribution(_discrete_values(override))
    if override.is_range_sweep():
        values = list(override.sweep_iterator())
        if not values:
            raise SweepError(f"search space {override.input_line!r} is an empty range")
        if all(isinstance(x, int) for x in (sweep.start, sweep.stop, sweep.step)):
            return IntDistribution(min(values), max(values), step=abs(sweep.step))
        # Decimal: the last value of range(0.1, 0.5, 0.1) is 0.4, not 0.30000000000000004 + 0.1
        start, step = Decimal(str(sweep.start)), Decimal(str(sweep.step))
        ends = [float(start), float(start + (len(values) - 1) * step)]
        return FloatDistribution(min(ends), max(ends), step=float(abs(step)))
    if override.is_interval_sweep():
        log = "log" in sweep.tags
        if isinstance(sweep.start, int) and isinstance(sweep.end, int):  # int(interval(...))
            return IntDistribution(sweep.start, sweep.end, log=log)
        return FloatDistribution(float(sweep.start), float(sweep.end), log=log)
    raise SweepError(
        f"search space {override.input_line!r}: use choice, range or interval "
        "(glob is not supported)"
    )


def _discrete_values(override: Override) -> list | None:
    """The values Hydra's basic sweeper would run, as Optuna categorical choices."""
    if override.is_interval_sweep():
        return None
    # Numbers and booleans stay numbers (readable in optuna-dashboard); anything else, such as
    # a string, a list or a dict, becomes its override text so that it goes back verbatim.
    return [
        x if isinstance(x, (bool, int, float)) else Transformer.str(x)
        for x in override.sweep_iterator()
    ]


def format_value(value: Any) -> str:
    """A sampled value as override text."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)  # the shortest text that reads back as the same float
    return str(value)  # an int, or a choice that is already override text


def _first(dist: BaseDistribution) -> Any:
    return dist.choices[0] if isinstance(dist, CategoricalDistribution) else dist.low
