"""`hydra/launcher=batched`: the jobs a sweeper hands over, trained in groups as one batched fit.

Jobs whose resolved configs agree on everything but `deeptune.run.batched.MEMBER_KEYS` (the seed,
the output folder, and whatever per-member knobs the batched back end honours) form a group; each
group of two or more is trained once by `batched.fit_members` (phase 1). Then every job runs
through Hydra's own `run_job` with the real task function, as the basic launcher runs it (phase
2): its .hydra/ folder, its log, its metrics.json and summary are the task's own, and its
JobReturn carries its objective. A grouped job's `deeptune.run.repeat.run` takes the metrics its
member left (`batched.take_fitted`) instead of fitting again.

Run as usual (ungrouped): a job alone in its group, `restarts>1` or `cv.folds>1`, a config the
batched back end refuses (`batched.check_member`), one already completed in its folder (resume
reads it back), or a group whose batched fit fails (each job then fails or succeeds on its own).
A trial of hydra/sweeper=optuna is batched with pruning off (pruning is per epoch and per
trial), said in one line.
"""

import copy
import json
import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hydra.core.config_store import ConfigStore
from hydra.core.hydra_config import HydraConfig
from hydra.core.utils import configure_log, filter_overrides, run_job, setup_globals
from hydra.plugins.launcher import Launcher
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf, open_dict, read_write

from deeptune.errors import ConfigError

log = logging.getLogger(__name__)


@dataclass
class BatchedLauncherConf:
    _target_: str = "hydra_plugins.deeptune_batched_launcher.launcher.BatchedLauncher"
    max_group: Any = None  # members per batched fit; null: the whole group. Any: deeptune's error


ConfigStore.instance().store(
    group="hydra/launcher", name="batched", node=BatchedLauncherConf, provider="deeptune"
)


class BatchedLauncher(Launcher):
    def __init__(self, max_group: Any = None) -> None:
        bad = isinstance(max_group, bool) or not isinstance(max_group, int) or max_group < 2
        if max_group is not None and bad:
            raise ConfigError("hydra.launcher.max_group", max_group, "null or an integer >= 2")
        self.max_group = max_group
        self.config: DictConfig | None = None
        self.task_function: TaskFunction | None = None
        self.hydra_context: HydraContext | None = None

    def setup(
        self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig
    ) -> None:
        self.config, self.hydra_context, self.task_function = config, hydra_context, task_function

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Any:
        from deeptune.run import batched

        setup_globals()
        configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
        Path(str(self.config.hydra.sweep.dir)).mkdir(parents=True, exist_ok=True)
        log.info(f"Launching {len(job_overrides)} jobs locally, batched where they agree")
        configs = []
        for idx, overrides in enumerate(job_overrides, start=initial_job_idx):
            sweep_config = self.hydra_context.config_loader.load_sweep_config(
                self.config, list(overrides)
            )
            with open_dict(sweep_config):
                sweep_config.hydra.job.id = idx
                sweep_config.hydra.job.num = idx
            configs.append(sweep_config)
        orig = HydraConfig.instance().cfg  # phase 1 sets each job's in turn, as run_job does
        try:
            try:
                for group in self._groups(configs):
                    self._fit(group)
            finally:
                HydraConfig.instance().cfg = orig
            runs = []
            for idx, (overrides, sweep_config) in enumerate(
                zip(job_overrides, configs, strict=True), start=initial_job_idx
            ):
                log.info(f"\t#{idx} : {' '.join(filter_overrides(overrides))}")
                runs.append(
                    run_job(
                        hydra_context=self.hydra_context,
                        task_function=self.task_function,
                        config=sweep_config,
                        job_dir_key="hydra.sweep.dir",
                        job_subdir_key="hydra.sweep.subdir",
                    )
                )
                configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
        finally:
            batched.FITTED.clear()  # a job that never ran leaves nothing for a later launch
        return runs

    def _groups(self, configs: list[DictConfig]) -> list[list[DictConfig]]:
        """The members' task configs (resolved, for fit_members) in groups of 2..max_group."""
        groups: dict[str, list[DictConfig]] = {}
        pruned_off = 0
        for sweep_config in configs:
            found = _member(sweep_config)
            if found is None:
                continue
            key, part, pruning = found
            groups.setdefault(key, []).append(part)
            pruned_off += pruning
        out = []
        size = self.max_group or max((len(g) for g in groups.values()), default=0)
        for members in groups.values():
            out += [members[i : i + size] for i in range(0, len(members), size)]
        out = [g for g in out if len(g) > 1]
        if pruned_off and out and _sweep_prunes(self.config):  # pruner=none: nothing lost
            log.warning(
                "hydra/launcher=batched: trials fitted together are not pruned (pruning is per "
                "trial and per epoch); hydra/launcher=basic prunes them"
            )
        return out

    def _fit(self, parts: list[DictConfig]) -> None:
        """One batched fit of the group; a failure leaves its jobs to run as usual."""
        from deeptune import builders, trust
        from deeptune.config import validate_against_data
        from deeptune.run import batched
        from deeptune.threads import apply_threads

        first = parts[0]
        started = time.perf_counter()
        try:
            with trust.trusting(first.trust_config):
                data = builders.data(first)
                validate_against_data(first, data)
                apply_threads(first.threads)
                fitted = batched.fit_members(parts, data)
        except Exception as err:  # each job meets it again on its own, and reports it there
            log.warning(
                "hydra/launcher=batched: a group's batched fit failed (%s): its jobs "
                "run one by one",
                str(err).splitlines()[0] if str(err) else type(err),
            )
            return
        # Each job's duration_s: its share of the group's time (the job itself then only reads
        # it back), so that a sweep's durations still add up to what it cost.
        share = round((time.perf_counter() - started) / len(parts), 2)
        for part, metrics in zip(parts, fitted, strict=True):
            batched.FITTED[_key(part.paths.output_dir)] = {**metrics, "duration_s": share}


def _member(sweep_config: DictConfig) -> tuple[str, DictConfig, bool] | None:
    """(group key, the job's resolved task config, whether pruning was on) of a job that can be
    batched; None for one that runs as usual."""
    from deeptune import outputs
    from deeptune.config import validate
    from deeptune.run import batched

    task = _task_config(sweep_config)
    try:
        plain = validate(task)
        batched.check_member(plain)
    except Exception as err:  # the job reports its own error when it runs
        log.warning("hydra/launcher=batched: job runs on its own: %s", str(err).splitlines()[0])
        return None
    if plain["restarts"] != 1 or plain["cv"]["folds"] != 1:
        return None
    if outputs.run_status(Path(plain["paths"]["output_dir"])) == "completed":
        return None  # resume=auto reads it back; resume=never refits it: either way, as usual
    pruning = (plain.get("optuna") or {}).get("trial") is not None
    # Unresolved (batched.group_key): resolved, every path under the job's own folder differs.
    agreed = copy.deepcopy(task)
    with open_dict(agreed):
        agreed.optuna = None  # the trial's number: pruning is off in a batched fit
        agreed.callbacks.optuna_pruning = None
    env = OmegaConf.to_container(sweep_config.hydra.job.env_set, resolve=True)
    key = json.dumps([batched.group_key(agreed), env], sort_keys=True, default=str)
    part = OmegaConf.create(plain)
    with open_dict(part):
        part.callbacks.optuna_pruning = None
    return key, part, pruning


def _sweep_prunes(config: DictConfig | None) -> bool:
    """Whether the sweep's pruner (hydra/sweeper=optuna's `pruner`: a name, or a node) can stop a
    trial: `none` (its default) and NopPruner never do."""
    pruner = None if config is None else OmegaConf.select(config, "hydra.sweeper.pruner")
    if OmegaConf.is_dict(pruner):
        return not str(pruner.get("_target_")).endswith(".NopPruner")
    return pruner not in (None, "none")


def _task_config(sweep_config: DictConfig) -> DictConfig:
    """The config the task function will get, with `hydra:` resolved against this job's own
    Hydra config (its output folder as run_job computes it)."""
    HydraConfig.instance().set_config(sweep_config)
    out = str(OmegaConf.select(sweep_config, "hydra.sweep.dir"))
    out = os.path.join(out, str(OmegaConf.select(sweep_config, "hydra.sweep.subdir")))
    config = copy.deepcopy(sweep_config)
    with read_write(config.hydra.runtime), open_dict(config.hydra.runtime):
        config.hydra.runtime.output_dir = os.path.abspath(out)
    HydraConfig.instance().set_config(config)
    task = copy.deepcopy(config)
    with read_write(task), open_dict(task):
        del task["hydra"]
    return task


def _key(out_dir) -> str:
    return str(Path(str(out_dir)).resolve())
