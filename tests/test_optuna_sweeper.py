"""hydra/sweeper=optuna: the search space and the bookkeeping in-process, then real sweeps
through `python train.py -m hydra/sweeper=optuna ...` as a user runs them."""

import importlib.util
import json
import math
import os
import re
import signal
import subprocess
import sys
import threading
import time
from types import SimpleNamespace

import optuna
import pytest
import torch
import yaml
from helpers.runs import ROOT, run_cli
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.utils import JobReturn, JobStatus
from hydra.errors import CompactHydraException
from omegaconf import OmegaConf
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState

from deeptune.callbacks.pruning import optuna_pruning
from deeptune.errors import ConfigError, Interrupted
from deeptune.sweeps import report
from deeptune.sweeps import study as contract
from deeptune.sweeps.study import PRUNER_ATTR, make_pruner
from hydra_plugins.deeptune_optuna_sweeper import _impl, _results, _shared, sweeper
from hydra_plugins.deeptune_optuna_sweeper._space import parse
from hydra_plugins.deeptune_optuna_sweeper.config import OptunaSweeperConf

# Hydra's plugin scan re-executes config.py when another test starts Hydra, which defines
# SweepError anew; its base class is what Hydra itself looks for, and it stays put.
SweepError = CompactHydraException

optuna.logging.set_verbosity(optuna.logging.WARNING)


# -- the search space ---------------------------------------------------------------------------


def test_overrides_become_distributions():
    space = parse(
        [
            "optimizer.lr=tag(log, interval(1e-4, 1e-1))",
            "model.depth=range(1, 3)",  # Hydra's range: the stop is excluded
            "model.activation=choice(relu, tanh)",
            "optimizer=sgd,adam",
            "model.width=int(interval(16, 256))",
            "data.batch_size=tag(log, int(interval(16, 256)))",
            "model.dropout=range(0.1, 0.5, 0.1)",
            "seed=range(5, 0, -2)",
            "model.dropout=interval(0.0, 0.5)",  # a key given again: the later one wins
            "trainer.max_epochs=3",
            "~callbacks.early_stopping",
        ]
    )
    assert space.distributions == {
        "optimizer.lr": FloatDistribution(1e-4, 0.1, log=True),
        "model.depth": IntDistribution(1, 2),
        "model.activation": CategoricalDistribution(["relu", "tanh"]),
        "optimizer": CategoricalDistribution(["sgd", "adam"]),
        "model.width": IntDistribution(16, 256),
        "data.batch_size": IntDistribution(16, 256, log=True),
        "seed": IntDistribution(1, 5, step=2),
        "model.dropout": FloatDistribution(0.0, 0.5),
    }
    assert space.fixed == {
        "trainer.max_epochs": "trainer.max_epochs=3",
        "~callbacks.early_stopping": "~callbacks.early_stopping",
    }
    assert parse(["d=range(0.1, 0.5, 0.1)"]).distributions["d"] == FloatDistribution(
        0.1, 0.4, step=0.1
    )


def test_sampled_values_read_back_as_the_same_overrides():
    space = parse(["w=choice([64,64],[128])", "s=choice('a b', c)", "b=true,false", "x=1"])
    params = {"w": "[64,64]", "s": "'a b'", "b": False, "lr": 0.000123456789, "n": 3}
    overrides = space.overrides(params)
    assert overrides[0] == "x=1"  # fixed overrides first, as typed
    parsed = {
        o.key_or_group: o.value() for o in OverridesParser.create().parse_overrides(overrides)
    }
    assert parsed["w"] == [64, 64] and parsed["s"] == "a b" and parsed["b"] is False
    assert parsed["lr"] == 0.000123456789 and parsed["n"] == 3


def test_grid_takes_the_discrete_values_and_refuses_an_interval():
    space = parse(["a=choice(x, y)", "b=range(1, 4)", "c=range(0.5, 1.5, 0.5)"])
    assert space.grid() == {"a": ["x", "y"], "b": [1, 2, 3], "c": [0.5, 1.0]}
    with pytest.raises(SweepError, match="sampler=grid needs discrete values, but lr is an"):
        parse(["a=choice(x, y)", "lr=interval(0.1, 1)"]).grid()
    with pytest.raises(SweepError, match="lr=tag"):
        parse(["lr=tag(log, interval(0, 1))"])  # log of 0


def test_settings_are_checked(monkeypatch):
    for key, value, allowed in [
        ("sampler", "bayes", "one of tpe, random, grid, cmaes, gp, qmc"),
        ("direction", "up", "minimize or maximize"),
        ("pruner", "early", "one of none, median"),
        ("n_trials", 0, "an integer >= 1"),
        ("max_failure_rate", 1.5, "a number in [0, 1]"),
        ("seed", -1, "an integer >= 0, or null"),
        ("heartbeat_interval", 0, "an integer >= 1 (seconds)"),
        ("grace_period", 10, "an integer of seconds > hydra.sweeper.heartbeat_interval"),
    ]:
        with pytest.raises(
            SweepError, match=rf"hydra.sweeper.{key}=.* is invalid: {re.escape(allowed)}"
        ):
            sweeper.check_settings(OptunaSweeperConf(**{key: value}))
    sweeper.check_settings(OptunaSweeperConf(direction="max", sampler="cmaes"))
    monkeypatch.setitem(sys.modules, "cmaes", None)  # as if the cmaes extra were not installed
    with pytest.raises(SweepError, match=r'sampler=.cmaes. .* pip install "deeptune\[cmaes\]"$'):
        sweeper.check_settings(OptunaSweeperConf(direction="max", sampler="cmaes"))
    assert isinstance(make_pruner({"name": "median", "args": {}}), optuna.pruners.MedianPruner)
    with pytest.raises(ValueError, match="pruner_args=.*no pruner takes \\['n_warmup'\\]"):
        make_pruner({"name": "median", "args": {"n_warmup": 1}})
    # an argument meant for another pruner is dropped, so presets can carry median's arguments
    assert isinstance(
        make_pruner({"name": "hyperband", "args": {"n_warmup_steps": 1}}),
        optuna.pruners.HyperbandPruner,
    )

    real = importlib.util.find_spec
    upstream = "hydra_plugins.hydra_optuna_sweeper"
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: object() if name == upstream else real(name)
    )
    with pytest.raises(SweepError, match="pip uninstall hydra-optuna-sweeper"):
        sweeper._refuse_upstream_plugin()


def test_storage_defaults_to_the_sweep_folder_and_sqlite_paths_become_absolute(tmp_path):
    assert _impl._storage_url(None, tmp_path) == f"sqlite:///{tmp_path}/optuna.db"
    url = _impl._storage_url("sqlite:///rel/s.db", tmp_path)
    assert url.startswith("sqlite:////") and url.endswith("/rel/s.db")
    assert _impl._storage_url("postgresql://u:p@host/db", tmp_path) == "postgresql://u:p@host/db"


# -- telling Optuna what a job did --------------------------------------------------------------


def _job(status, value):
    ret = JobReturn(status=status)
    ret.return_value = value
    return ret


def test_job_results_become_trial_states():
    study = optuna.create_study(direction="maximize")
    try:
        raise ConfigError("model.depth", 0, "must be an integer >= 1")
    except ConfigError as err:
        config_error = err
    jobs = [
        _job(JobStatus.COMPLETED, 0.9),
        _job(JobStatus.COMPLETED, math.nan),
        _job(JobStatus.COMPLETED, None),
        _job(JobStatus.FAILED, optuna.TrialPruned("pruned at epoch 1 (val/acc=0.1000)")),
        _job(JobStatus.FAILED, config_error),
    ]
    for job in jobs:
        _impl._tell(study, study.ask(), job, "val/acc")
    assert [t.state.name for t in study.trials] == ["COMPLETE", "FAIL", "FAIL", "PRUNED", "FAIL"]
    assert study.trials[0].value == 0.9
    assert "nan, not a finite number" in study.trials[1].user_attrs["error"]
    assert study.trials[4].user_attrs["error"] == (
        "ConfigError: model.depth=0 is invalid: must be an integer >= 1"
    )
    assert "Traceback" in study.trials[4].user_attrs["traceback"]


def _add(study, *states, **attrs):
    for state in states:
        value = 1.0 if state == TrialState.COMPLETE else None
        study.add_trial(optuna.trial.create_trial(state=state, value=value, user_attrs=attrs))


def test_failure_rate_limit():
    study = optuna.create_study()
    _add(study, *[TrialState.COMPLETE] * 3, TrialState.FAIL)
    _add(study, TrialState.FAIL, interrupted=True)  # not the trial's fault: does not count
    _impl._check_failure_rate(study, 20, 0.25, "r.yaml")  # 1 of 4 = 0.25: not above
    with pytest.raises(SweepError, match=r"1 of 4 finished trials failed: rate 0.25 > .*=0.2;"):
        _impl._check_failure_rate(study, 20, 0.2, "r.yaml")
    _add(study, TrialState.FAIL)
    with pytest.raises(SweepError, match="2 of 5"):
        _impl._check_failure_rate(study, 20, 0.25, "r.yaml")
    first = optuna.create_study()
    _add(first, TrialState.FAIL)
    with pytest.raises(SweepError, match="1 of 1"):  # early, but already more than 0 x n_trials
        _impl._check_failure_rate(first, 4, 0.0, "r.yaml")


# -- several sweeps on one study, stops and resumes (in-process, with a launcher that fakes jobs)


class _Launcher:
    """Hydra's launcher interface; a job's value is the sum of its sampled numbers. `stop`:
    raised by the n-th job instead, as a signal would be."""

    def __init__(self, seconds=0.0, stop=None, at=0):
        self.seconds, self.stop, self.at, self.jobs = seconds, stop, at, 0

    def launch(self, batch, initial_job_idx):
        returns = []
        for overrides in batch:
            self.jobs += 1
            if self.stop is not None and self.jobs == self.at:
                raise self.stop
            time.sleep(self.seconds)
            values = dict(o.split("=", 1) for o in overrides if not o.startswith("optuna."))
            returns.append(_job(JobStatus.COMPLETED, sum(float(v) for v in values.values())))
        return returns


def _fake_sweeper(tmp_path, storage, launcher, folder="sweep", **settings):
    config = OmegaConf.create(
        {
            "hydra": {
                "sweep": {"dir": str(tmp_path / folder)},
                "job": {"name": "t"},
                "overrides": {"hydra": [], "task": []},
            },
            "optimized_metric": "val/acc",
        }
    )
    settings = {"storage": storage, "study_name": "s", "seed": 0, **settings}
    return SimpleNamespace(
        settings=OptunaSweeperConf(**settings),
        config=config,
        launcher=launcher,
        validate_batch_is_legal=lambda batch: None,
    )


SPACE = ["x=interval(0.0, 1.0)", "y=tag(log, interval(1e-3, 1.0))", "k=int(interval(0, 1000))"]


def _params(study, states=(TrialState.COMPLETE,)):
    return [tuple(t.params.values()) for t in study.get_trials(states=states)]


def test_a_stopped_sweep_marks_its_trials_and_names_the_command_that_resumes(tmp_path):
    storage = f"sqlite:///{tmp_path}/s.db"
    for stop, status in [(Interrupted(signal.SIGTERM), 143), (KeyboardInterrupt(), 130)]:
        study_name = f"s{status}"
        launcher = _Launcher(stop=stop, at=3)
        with pytest.raises(Interrupted) as raised:
            _impl.run_sweep(
                _fake_sweeper(tmp_path, storage, launcher, study_name=study_name, n_trials=6), SPACE
            )
        assert raised.value.exit_status == status and raised.value.__suppress_context__
        assert str(raised.value).endswith(
            "(trial(s) 2 marked interrupted); to resume, run the same command with "
            f"hydra.sweeper.storage={storage} hydra.sweeper.study_name={study_name}"
        )
        trials = optuna.load_study(study_name=study_name, storage=storage).trials
        assert [t.state for t in trials[:3]] == [TrialState.COMPLETE] * 2 + [TrialState.FAIL]
        assert trials[2].user_attrs["interrupted"] is True
        assert trials[3].state == TrialState.WAITING and trials[3].user_attrs["retry_of"] == 2
        assert trials[3].params == trials[2].params


@pytest.mark.parametrize("sampler", ["tpe", "random", "cmaes", "gp", "qmc", "grid"])
def test_a_seeded_study_resumed_continues_its_sequence(tmp_path, sampler):
    """The same seed gives the same trials; stopped and resumed, a seeded study goes on with new
    ones instead of proposing trial 0's params again (relative samplers too: n_startup_trials)."""
    storage = f"sqlite:///{tmp_path}/s.db"
    space = ["x=choice(0, 1, 2)", "y=choice(0, 1)"] if sampler == "grid" else SPACE
    args = {"n_startup_trials": 2} if sampler in ("tpe", "cmaes", "gp") else {}

    def sweep(name, stop=None):
        launcher = _Launcher(stop=stop, at=4)
        fake = _fake_sweeper(tmp_path, storage, launcher, study_name=name, n_trials=6)
        fake.settings.sampler, fake.settings.sampler_args = sampler, args
        _impl.run_sweep(fake, space)
        return optuna.load_study(study_name=name, storage=storage)

    unbroken = _params(sweep("unbroken"))
    with pytest.raises(Interrupted):
        sweep("stopped", stop=Interrupted(signal.SIGTERM))  # in the 4th trial
    resumed = sweep("stopped")
    assert _params(resumed)[:3] == unbroken[:3]  # reproducible
    assert len(set(_params(resumed))) == 6  # no parameter set twice
    retry = next(t for t in resumed.trials if t.user_attrs.get("retry_of") == 3)
    assert retry.params == resumed.trials[3].params and retry.state == TrialState.COMPLETE


def test_sweeps_sharing_a_study_run_n_trials_in_all(tmp_path):
    storage, failures = f"sqlite:///{tmp_path}/s.db", []

    def sweep(i, n_jobs):
        launcher = _Launcher(0.05)
        fake = _fake_sweeper(tmp_path, storage, launcher, f"sweep{i}", n_trials=10, n_jobs=n_jobs)
        try:
            _impl.run_sweep(fake, SPACE)
        except BaseException as err:  # noqa: BLE001  (reported below)
            failures.append(err)

    threads = [threading.Thread(target=sweep, args=(i, 1 + i % 2)) for i in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not failures
    study = optuna.load_study(study_name="s", storage=storage)
    assert _results.finished(study) == len(study.get_trials(states=(TrialState.COMPLETE,))) == 10
    assert len(set(_params(study))) == 10  # the same seed in every sweep, no parameter set twice
    counts = _results.counts(study)
    assert counts["interrupted"] == counts["running"] == counts["waiting"] == 0


@pytest.mark.filterwarnings("ignore:Heartbeat of storage is supposed")
def test_a_trial_whose_heartbeat_stopped_is_retried_and_a_live_one_is_not(tmp_path, monkeypatch):
    monkeypatch.setattr(_impl, "POLL", 0.2)
    storage = f"sqlite:///{tmp_path}/s.db"
    first = optuna.create_study(storage=_shared.storage(storage, 1, 2), study_name="s")
    x, x_space = {"x": FloatDistribution(0.0, 1.0)}, ["x=interval(0.0, 1.0)"]
    gone, live, silent = (first.ask(x) for _ in range(3))
    contract.record_heartbeat(first, gone)  # one heartbeat, then its sweep was killed
    gone.set_user_attr(_shared.OWNER, "elsewhere:1")
    # `silent` never records one: killed just after asking, or from before heartbeats.
    with _shared.Heartbeat(first, 0.5) as heartbeat:
        heartbeat.add(live)
        second = optuna.load_study(study_name="s", storage=_shared.storage(storage, 1, 2))
        recover = _shared.Recovery(second, 2)
        recover()
        assert all(t.state == TrialState.RUNNING for t in second.trials)
        time.sleep(3.5)  # heartbeats are timed in whole seconds
        recover()
        trials = second.trials
        assert trials[live.number].state == TrialState.RUNNING  # its sweep is alive
        for old in (gone, silent):
            assert trials[old.number].state == TrialState.FAIL
            retry = next(t for t in trials if t.user_attrs.get("retry_of") == old.number)
            assert retry.state == TrialState.WAITING and retry.params == old.params
        assert _results.counts(second)["interrupted"] == 2  # not counted as failures

        # The sweep of `gone` comes back and tells: dropped, its retry counts instead.
        assert not _shared.finish(first, gone, {}, 1.0)
        # A second sweep runs the retries, then waits for `live`, which its sweep finishes.
        threading.Timer(1.0, lambda: _shared.finish(first, live, {}, 0.5)).start()
        _impl.run_sweep(_fake_sweeper(tmp_path, storage, _Launcher(), n_trials=3), list(x_space))
    done = {t.number for t in second.get_trials(states=(TrialState.COMPLETE,))}
    assert done == {live.number, 3, 4} and _results.finished(second) == 3


# -- the job's side: the pruning callback -------------------------------------------------------


def test_pruning_callback_reports_each_epoch_and_stops_a_bad_trial(tmp_path):
    storage = f"sqlite:///{tmp_path}/p.db"
    study = optuna.create_study(storage=storage, study_name="p", direction="maximize")
    study.set_user_attr(PRUNER_ATTR, {"name": "median", "args": {"n_startup_trials": 1}})
    study.add_trial(optuna.trial.create_trial(value=0.9, intermediate_values={0: 0.8, 1: 0.9}))
    number = study.ask().number
    callback = optuna_pruning(storage, "p", number, monitor="val/acc")
    assert optuna_pruning(storage, "p", None) is None  # outside a sweep: no callback
    assert isinstance(callback.trial.study.pruner, optuna.pruners.MedianPruner)
    trainer = SimpleNamespace(
        sanity_checking=True,
        current_epoch=0,
        state=SimpleNamespace(fn="fit"),
        is_global_zero=True,
        callback_metrics={"val/acc": torch.tensor(0.05)},
        strategy=SimpleNamespace(broadcast=lambda obj, src=0: obj),
    )
    callback.on_validation_end(trainer, None)  # the sanity check: not an epoch
    trainer.sanity_checking = False
    trainer.callback_metrics["val/acc"] = torch.tensor(0.875)
    callback.on_validation_end(trainer, None)  # better than the median: goes on
    trainer.current_epoch, trainer.callback_metrics["val/acc"] = 1, torch.tensor(0.5)
    with pytest.raises(optuna.TrialPruned, match=r"pruned at epoch 1 \(val/acc=0.5000\)"):
        callback.on_validation_end(trainer, None)
    assert study.trials[number].intermediate_values == {0: 0.875, 1: 0.5}
    trainer.state.fn, trainer.current_epoch = "validate", 2  # an evaluation after the fit
    callback.on_validation_end(trainer, None)
    assert study.trials[number].intermediate_values == {0: 0.875, 1: 0.5}  # not a step
    trainer.state.fn = "fit"

    # Training metrics are logged after validation: the epoch's value is reported one hook later.
    number = study.ask().number
    callback = optuna_pruning(storage, "p", number, monitor="train/acc")
    trainer.callback_metrics["train/acc"] = torch.tensor(0.75)
    callback.on_validation_end(trainer, None)  # the epoch's train/acc is not in yet
    trainer.current_epoch = 2
    with pytest.raises(optuna.TrialPruned, match=r"epoch 1 \(train/acc=0.7500\)"):
        callback.on_train_epoch_start(trainer, None)
    assert study.trials[number].intermediate_values == {1: 0.75}

    with pytest.raises(ConfigError, match="optuna.trial=99 is invalid: no such trial"):
        optuna_pruning(storage, "p", 99)


# -- real sweeps --------------------------------------------------------------------------------


def _sweep(tmp_path, *overrides, folder="sweep"):
    ran = run_cli(
        str(ROOT / "train.py"),
        "-m",
        "hydra/sweeper=optuna",
        f"hydra.sweep.dir={tmp_path / folder}",
        "logger=csv",
        *overrides,
        cwd=tmp_path,
    )
    results = tmp_path / folder / "optimization_results.yaml"
    return ran, (yaml.safe_load(results.read_text()) if results.is_file() else None)


def _study(results: dict) -> optuna.Study:
    return optuna.load_study(study_name=results["study_name"], storage=results["storage"])


@pytest.mark.slow
def test_tpe_sweep_from_the_command_line(tmp_path):
    ran, results = _sweep(
        tmp_path,
        "trainer.max_epochs=1",
        "hydra.sweeper.n_trials=4",
        "hydra.sweeper.seed=0",
        "optimizer.lr=tag(log, interval(1e-4, 1e-1))",
        "model.depth=range(1, 3)",
        "model.activation=choice(relu, tanh)",
    )
    assert ran.returncode == 0, ran.stderr[-3000:]
    sweep = tmp_path / "sweep"
    assert sorted(p.name for p in sweep.iterdir() if p.is_dir()) == ["0", "1", "2", "3"]
    metrics = [json.loads((sweep / str(n) / "metrics.json").read_text()) for n in range(4)]
    assert all(m["status"] == "completed" for m in metrics)

    study = optuna.load_study(
        study_name=results["study_name"], storage=f"sqlite:///{sweep}/optuna.db"
    )
    trials = study.trials
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 4
    assert all(t.value == metrics[t.number]["val"]["acc"] for t in trials)  # job n is trial n
    assert all(1e-4 <= t.params["optimizer.lr"] <= 1e-1 for t in trials)
    assert {t.params["model.depth"] for t in trials} <= {1, 2}
    config = yaml.safe_load((sweep / "0" / ".hydra" / "config.yaml").read_text())
    assert config["optuna"]["trial"] == 0 and config["optuna"]["study_name"] == study.study_name

    best = max(trials, key=lambda t: t.value)
    assert results["best_trial"] == best.number and results["best_value"] == best.value
    assert results["best_params"] == best.params and results["direction"] == "maximize"
    assert results["trials"]["complete"] == 4 and results["n_trials"] == 4
    # the summary every multirun ends with, after the study's own lines
    assert "sweep: 4 jobs (completed 4), " in ran.stdout
    assert "best 4 of 4 jobs by val/acc (higher is better)" in ran.stdout
    assert ran.stdout.index("study ") < ran.stdout.index(f"deeptune-report {sweep}")


@pytest.mark.slow
def test_failed_trials_are_recorded_and_too_many_stop_the_sweep(tmp_path):
    """A grid where model.depth=0 raises ConfigError in the job: 2 of 4 trials fail."""
    grid = ["callbacks=none", "trainer.max_epochs=1", "hydra.sweeper.sampler=grid"]
    grid += ["model.depth=choice(1, 0)", "model.activation=relu,tanh"]
    ran, results = _sweep(tmp_path, *grid, "hydra.sweeper.max_failure_rate=0.5")
    assert ran.returncode == 0, ran.stderr[-3000:]
    study = _study(results)
    assert {(t.params["model.depth"], t.params["model.activation"]) for t in study.trials} == {
        (1, "relu"),
        (1, "tanh"),
        (0, "relu"),
        (0, "tanh"),
    }  # the whole grid, each point once
    failed = [t for t in study.trials if t.state == TrialState.FAIL]
    assert [t.params["model.depth"] for t in failed] == [0, 0]
    assert "ConfigError: model.depth=0 is invalid" in failed[0].user_attrs["error"]
    assert results["trials"]["complete"] == 2 and results["trials"]["fail"] == 2
    assert set(results["failures"]) == {t.number for t in failed}
    assert "Traceback" not in ran.stdout + ran.stderr  # one warning line per failed trial
    assert ran.stdout.count("failed: ConfigError") + ran.stderr.count("failed: ConfigError") == 2

    ran, results = _sweep(tmp_path, *grid, "hydra.sweeper.max_failure_rate=0", folder="strict")
    assert ran.returncode != 0
    assert "> hydra.sweeper.max_failure_rate=0.0; sweep stopped" in ran.stderr
    assert results["trials"]["fail"] == 1 and results["trials"]["complete"] <= 2


@pytest.mark.slow
def test_median_pruner_stops_bad_trials(tmp_path):
    ran, results = _sweep(
        tmp_path,
        "callbacks=none",
        "trainer.max_epochs=4",
        "optimizer=adam",
        "optimizer.lr=choice(1e-5, 1e-2)",  # 1e-5 barely moves in 4 epochs
        "seed=1,2,3",
        "hydra.sweeper.sampler=grid",
        "hydra.sweeper.seed=0",
        "hydra.sweeper.pruner=median",
        "+hydra.sweeper.pruner_args={n_startup_trials: 1, n_warmup_steps: 0}",
    )
    assert ran.returncode == 0, ran.stderr[-3000:]
    study = _study(results)
    pruned = [t for t in study.trials if t.state == TrialState.PRUNED]
    assert pruned and results["trials"]["pruned"] == len(pruned)
    assert results["trials"]["complete"] + len(pruned) == 6
    for trial in pruned:
        metrics = json.loads((tmp_path / "sweep" / str(trial.number) / "metrics.json").read_text())
        assert metrics["status"] == "pruned" and metrics["epochs"] < 4
        assert trial.intermediate_values  # the job reported before it was stopped
    assert "pruned at epoch" in ran.stdout + ran.stderr


@pytest.mark.slow
def test_the_same_command_resumes_the_study(tmp_path):
    storage = f"sqlite:///{tmp_path}/s.db"
    args = ["callbacks=none", "trainer.max_epochs=1", f"hydra.sweeper.storage={storage}"]
    args += ["hydra.sweeper.study_name=x", "model.depth=1,2", "optimizer.lr=interval(1e-3, 1e-2)"]
    ran, _ = _sweep(tmp_path, *args, "hydra.sweeper.n_trials=2")
    assert ran.returncode == 0, ran.stderr[-3000:]
    first_job = (tmp_path / "sweep" / "0" / "metrics.json").read_text()

    # A sweep killed mid-trial leaves it RUNNING: simulate that.
    study = optuna.load_study(study_name="x", storage=storage)
    space = {
        "model.depth": CategoricalDistribution([1, 2]),
        "optimizer.lr": FloatDistribution(1e-3, 1e-2),
    }
    left = study.ask(space)

    # It has no heartbeat (a killed sweep's trial would, until grace_period): retried once it is
    # older than grace_period.
    # Resumed from another folder (the next multirun/<date>/<time>), it continues in its own.
    grace = ["hydra.sweeper.heartbeat_interval=1", "hydra.sweeper.grace_period=2"]
    ran, _ = _sweep(tmp_path, *args, *grace, "hydra.sweeper.n_trials=4", folder="second")
    assert ran.returncode == 0, ran.stderr[-3000:]
    assert not (tmp_path / "second").exists()
    assert f"study 'x' continues in its folder {tmp_path / 'sweep'}" in ran.stdout + ran.stderr
    results = yaml.safe_load((tmp_path / "sweep" / "optimization_results.yaml").read_text())
    trials = optuna.load_study(study_name="x", storage=storage).trials
    assert trials[left.number].state == TrialState.FAIL
    assert trials[left.number].user_attrs["interrupted"] is True
    retry = next(t for t in trials if t.user_attrs.get("retry_of") == left.number)
    assert retry.params == left.params and retry.state == TrialState.COMPLETE
    assert [t.state for t in trials].count(TrialState.COMPLETE) == 4  # n_trials is the total
    assert results["trials"] == {
        "complete": 4,
        "pruned": 0,
        "fail": 0,
        "interrupted": 1,
        "surplus": 0,
        "running": 0,
        "waiting": 0,
    }
    jobs = sorted(p.name for p in (tmp_path / "sweep").iterdir() if p.is_dir())
    assert jobs == ["0", "1", "3", "4"]  # folders named by trial number: none reused
    assert (tmp_path / "sweep" / "0" / "metrics.json").read_text() == first_job
    # so its report, and the summary the sweep ended with, list every trial of the study
    assert "sweep: 4 jobs (completed 4), " in ran.stdout
    assert report.load(tmp_path / "sweep").df["job"].tolist() == [0, 1, 3, 4]


def _start(tmp_path, *overrides):
    command = [sys.executable, str(ROOT / "train.py"), "-m", "hydra/sweeper=optuna", "logger=csv"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "WANDB_MODE": "disabled"}
    return subprocess.Popen(
        [*command, *overrides],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for(folder, pattern, seconds=120):
    deadline = time.time() + seconds
    while not any(folder.glob(pattern)) and time.time() < deadline:
        time.sleep(0.2)
    assert any(folder.glob(pattern)), f"no {pattern} in {folder}"


@pytest.mark.slow
def test_sweep_processes_share_one_study(tmp_path):
    """Two sweeps started together on a new SQLite study (they race to create its tables) and a
    third started while their trials run: all end well, with n_trials trials in all, once each."""
    storage = f"sqlite:///{tmp_path}/s.db"
    args = ["callbacks=none", "trainer.max_epochs=1", "test=false", "hydra.sweeper.seed=0"]
    args += [f"hydra.sweeper.storage={storage}", "hydra.sweeper.study_name=x"]
    args += ["hydra.sweeper.n_trials=6", "optimizer.lr=tag(log, interval(1e-3, 1e-1))"]
    args += ["model.dropout=interval(0.0, 0.5)"]
    sweeps = [_start(tmp_path, f"hydra.sweep.dir={tmp_path}/{name}", *args) for name in "ab"]
    _wait_for(tmp_path, "[ab]/[0-9]*")  # a trial is running
    sweeps.append(_start(tmp_path, f"hydra.sweep.dir={tmp_path}/c", *args))
    try:
        ended = [sweep.communicate(timeout=240) for sweep in sweeps]
    finally:
        for sweep in sweeps:
            sweep.kill()
    for sweep, (_, err) in zip(sweeps, ended, strict=True):
        assert sweep.returncode == 0, err[-3000:]
    study = optuna.load_study(study_name="x", storage=storage)
    complete = study.get_trials(states=(TrialState.COMPLETE,))
    assert len(complete) == _results.finished(study) == 6
    assert len({tuple(t.params.values()) for t in complete}) == 6  # no parameter set twice
    # Each trial ran as one job, in the folder of the sweep that ran it.
    jobs = {int(p.parent.name): p for p in tmp_path.glob("[abc]/*/metrics.json")}
    assert sorted(jobs) == sorted(t.number for t in complete)
    assert all(json.loads(jobs[t.number].read_text())["val"]["acc"] == t.value for t in complete)


@pytest.mark.slow
def test_sigterm_stops_a_sweep_with_one_line_and_status_143(tmp_path):
    storage = f"sqlite:///{tmp_path}/s.db"
    sweep = _start(
        tmp_path,
        f"hydra.sweep.dir={tmp_path}/sweep",
        "callbacks=none",
        "trainer.max_epochs=10000",  # a trial that would run long
        "model.depth=1,2",
        f"hydra.sweeper.storage={storage}",
        "hydra.sweeper.study_name=x",
    )
    try:
        _wait_for(tmp_path / "sweep", "0")
        time.sleep(1.0)
        sweep.send_signal(signal.SIGTERM)
        out, err = sweep.communicate(timeout=60)
    finally:
        sweep.kill()
    assert sweep.returncode == 143, err[-3000:]
    assert "Traceback" not in out + err
    last = err.strip().splitlines()[-1]  # the one line the sweep ends with
    assert last.endswith(
        "stopped by SIGTERM (trial(s) 0 marked interrupted); to resume, run the same command "
        f"with hydra.sweeper.storage={storage} hydra.sweeper.study_name=x"
    )
    trials = optuna.load_study(study_name="x", storage=storage).trials
    assert trials[0].state == TrialState.FAIL and trials[0].user_attrs["interrupted"] is True
    assert trials[1].state == TrialState.WAITING and trials[1].user_attrs["retry_of"] == 0
    results = yaml.safe_load((tmp_path / "sweep" / "optimization_results.yaml").read_text())
    assert results["trials"]["interrupted"] == 1 and results["best_trial"] is None


@pytest.mark.slow
def test_grid_over_an_interval_fails_before_any_trial(tmp_path):
    ran, _ = _sweep(tmp_path, "hydra.sweeper.sampler=grid", "optimizer.lr=interval(0.01, 0.1)")
    assert ran.returncode == 2  # bad input, like every config error
    assert "sampler=grid needs discrete values, but optimizer.lr is an interval" in ran.stderr
    assert "Traceback" not in ran.stderr
    assert not (tmp_path / "sweep" / "optuna.db").exists()
