"""hydra/sweeper=optuna speaks the official hydra-optuna-sweeper's schema too: sampler and pruner
nodes, hydra/sweeper/sampler groups, custom_search_space, multi-objective studies, its class path
(lightning-hydra-template's mnist_optuna.yaml runs), and presets that sweep without -m."""

import inspect
import json
import os
import re
import sys
from types import SimpleNamespace

import numpy as np
import optuna
import pytest
import yaml
from helpers.runs import ROOT, run_cli
from hydra import compose, initialize_config_dir
from hydra.core.plugins import Plugins
from hydra.core.utils import JobReturn, JobStatus
from hydra.errors import CompactHydraException
from hydra.types import RunMode
from hydra.utils import instantiate
from omegaconf import OmegaConf

from deeptune import extras
from deeptune.callbacks.pruning import optuna_pruning
from deeptune.config import CONFIG_DIR, validate, validate_against_data
from deeptune.errors import ConfigError
from deeptune.sweeps import report
from deeptune.sweeps.study import make_pruner
from hydra_plugins.deeptune_optuna_sweeper import _impl, config, sweeper
from hydra_plugins.deeptune_optuna_sweeper._sampling import Sampling
from hydra_plugins.deeptune_optuna_sweeper._space import parse

SweepError = CompactHydraException  # see tests/test_optuna_sweeper.py
USER_CONFIGS = ROOT / "tests" / "configs"  # a user's config folder: LHT's mnist_optuna.yaml
OFFICIAL = "hydra_plugins.hydra_optuna_sweeper.optuna_sweeper.OptunaSweeper"

optuna.logging.set_verbosity(optuna.logging.WARNING)


def _compose(*overrides):
    with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
        return compose("train", overrides=list(overrides), return_hydra_config=True)


def _settings(cfg) -> config.OptunaSweeperConf:
    """The settings Hydra gives the sweeper it builds (a plugin class is looked up by name)."""
    cls = Plugins.instance().class_name_to_class[cfg.hydra.sweeper._target_]
    return instantiate(cfg.hydra.sweeper, _target_=cls).settings


def _sampler(cfg, space=("x=interval(0.0, 1.0)",)):
    settings = _settings(cfg)
    sweeper.check_settings(settings)
    return Sampling(settings, parse(list(space)))


# -- samplers and pruners: a name, or a node ----------------------------------------------------


def test_sampler_groups_are_optunas_defaults_and_a_group_or_a_name_picks_the_sampler():
    for name, args in config.SAMPLER_NODES.items():
        cls = optuna.samplers.__dict__[config.SAMPLERS[name].rpartition(".")[2]]
        defaults = {k: p.default for k, p in inspect.signature(cls).parameters.items()}
        assert args == {k: defaults[k] for k in args}, name  # the group builds Optuna's default

    chosen = _compose("hparams_search=bayes", "hydra/sweeper/sampler=random")
    assert isinstance(_sampler(chosen).shared, optuna.samplers.RandomSampler)
    tpe = _sampler(_compose("hparams_search=bayes", "hydra.sweeper.sampler.n_startup_trials=3"))
    assert isinstance(tpe.shared, optuna.samplers.TPESampler) and tpe.seed == 0  # sweeper.seed
    assert tpe.shared._n_startup_trials == 3
    by_name = _compose("hparams_search=random", "hydra.sweeper.sampler=qmc")  # deeptune's form
    assert isinstance(_sampler(by_name).shared, optuna.samplers.QMCSampler)
    grid = _compose("hydra/sweeper=optuna", "hydra/sweeper/sampler=grid")
    assert _sampler(grid, ["x=choice(1, 2)"]).name == "grid"
    nsga = _compose("hydra/sweeper=optuna", "hydra/sweeper/sampler=nsgaii")
    assert isinstance(_sampler(nsga).shared, optuna.samplers.NSGAIISampler)


def test_a_sampler_node_is_built_per_trial_with_its_seed_and_checked():
    node = "{_target_: optuna.samplers.CmaEsSampler, seed: 7, n_startup_trials: 2}"
    cmaes = _sampler(_compose("hydra/sweeper=optuna", f"hydra.sweeper.sampler={node}"))
    assert cmaes.seed == 7 and cmaes.name == "cmaes"
    assert cmaes.for_trial(3)._n_startup_trials == 2  # a sampler of its own for each trial
    nested = "{_target_: optuna.samplers.GPSampler, independent_sampler: {_target_: "
    nested += "optuna.samplers.RandomSampler}}"
    gp = _sampler(_compose("hydra/sweeper=optuna", f"hydra.sweeper.sampler={nested}"))
    assert isinstance(gp.shared._independent_sampler, optuna.samplers.RandomSampler)
    # the official plugin's grid node is a partial, to which the sweeper adds the grid
    partial = "{_target_: optuna.samplers.GridSampler, _partial_: true}"
    grid = _compose("hydra/sweeper=optuna", f"hydra.sweeper.sampler={partial}")
    assert _sampler(grid, ["x=choice(1, 2)"]).name == "grid"

    for overrides, message in [
        (["hydra.sweeper.sampler={_target_: os.system}"], "sampler._target_='os.system' is inva"),
        (
            ["hydra.sweeper.sampler={_target_: optuna.samplers.TPE}"],
            "sampler._target_='optuna.samplers.TPE' is invalid: optuna 5",
        ),
        (
            ["hydra/sweeper/sampler=tpe", "+hydra.sweeper.sampler.n_startup=5"],
            "hydra.sweeper.sampler.n_startup=5 is invalid: TPESampler takes ",
        ),
        (["+hydra.sweeper.sampler_args.popsize=-1"], "hydra.sweeper.sampler_args.popsize=-1 is"),
        (
            ["hydra/sweeper/sampler=tpe", "hydra.sweeper.sampler.seed=1", "hydra.sweeper.seed=2"],
            "hydra.sweeper.seed=2 is invalid: hydra.sweeper.sampler.seed=1 says otherwise",
        ),
        (["hydra.sweeper.sampler=bayes"], "one of tpe, random, grid, cmaes, gp, qmc, nsgaii"),
    ]:
        with pytest.raises(SweepError, match=re.escape(message)):
            _sampler(_compose("hydra/sweeper=optuna", *overrides))


def test_a_pruner_node_and_pruner_args():
    spec = {"target": "optuna.pruners.PercentilePruner", "node": {"percentile": 25.0}}
    pruner = make_pruner({**spec, "args": {"n_startup_trials": 3, "min_resource": 1}})
    assert isinstance(pruner, optuna.pruners.PercentilePruner)
    assert pruner._percentile == 25.0 and pruner._n_startup_trials == 3  # min_resource: dropped
    wrapped = {"_target_": "optuna.pruners.MedianPruner", "n_warmup_steps": 2}
    patient = {"target": "optuna.pruners.PatientPruner", "node": {"wrapped_pruner": wrapped}}
    with pytest.raises(ValueError, match="PatientPruner.*missing .* 'patience'"):
        make_pruner(patient)  # patience is required
    patient["node"]["patience"] = 1
    assert make_pruner(patient)._wrapped_pruner._n_warmup_steps == 2
    with pytest.raises(ValueError, match=r"^hydra.sweeper.pruner._target_='optuna.samplers.Ra"):
        make_pruner({"target": "optuna.samplers.RandomSampler"})
    bad = {"target": "optuna.pruners.MedianPruner", "node": {"warmup": 1}}
    with pytest.raises(ValueError, match=r"^hydra.sweeper.pruner.warmup=1 is invalid: MedianPr"):
        make_pruner(bad)
    # the sweep stores what each trial rebuilds its pruner from
    s = config.OptunaSweeperConf(pruner={"_target_": spec["target"], "percentile": 25.0})
    sweeper.check_settings(s)
    assert _impl._pruner_spec(s, ["maximize"]) == {**spec, "args": {}}


# -- objectives and directions ------------------------------------------------------------------


def _objectives(metric, direction=None, mode="max", pruner="none"):
    s = config.OptunaSweeperConf(direction=direction, pruner=pruner)
    sweeper.check_settings(s)
    cfg = OmegaConf.create({"optimized_metric": metric, "optimized_mode": mode})
    objectives, directions = _impl._objectives(s, cfg)
    _impl._pruner_spec(s, directions)
    return objectives, directions


def test_directions_follow_the_objectives():
    assert _objectives("val/acc") == (["val/acc"], ["maximize"])
    assert _objectives("val/loss", "min", "min") == (["val/loss"], ["minimize"])
    two = ["val/acc", "n_params"]
    assert _objectives(two) == (two, ["maximize", "minimize"])  # each one's better way
    assert _objectives(two, ["max", "max"]) == (two, ["maximize", "maximize"])
    with pytest.raises(SweepError, match=r"direction=\['maximize'\] is invalid: 1 directions for"):
        _objectives(two, ["maximize"])
    with pytest.raises(SweepError, match=r"direction=\['max', 'min'\] .* optimized_metric=val/"):
        _objectives("val/acc", ["max", "min"])
    with pytest.raises(SweepError, match="pruner=median is invalid: Optuna cannot prune a multi"):
        _objectives(two, pruner="median")
    with pytest.raises(SweepError, match="direction='up' is invalid: minimize or maximize"):
        _objectives("val/acc", "up")


def test_optimized_metric_as_a_list_is_validated(train_cfg):
    cfg = train_cfg("optimized_metric=[val/acc,n_params]", "data=moons")
    validate(cfg)
    assert cfg.callbacks.model_checkpoint.monitor == "val/acc"  # the first one is watched
    assert cfg.callbacks.optuna_pruning.monitor == "val/acc"
    for metric, message in [
        ("[n_params,val/acc]", r"optimized_metric\[0\]='n_params' is invalid: .* not the first"),
        ("[val/acc,n_parms]", r"optimized_metric\[1\]='n_parms' is invalid: .*, n_params, durat"),
        ("[val/acc,val/acc]", "names an objective twice"),
        ("[]", "optimized_metric=\\[\\] is invalid: a metric such as val/acc"),
    ]:
        with pytest.raises(ConfigError, match=message):
            validate(train_cfg(f"optimized_metric={metric}"))
    regression = train_cfg("optimized_metric=[val/acc,val/mse]", "data=moons")
    table = SimpleNamespace(task="classification", x=np.zeros((4, 2)))  # moons: 2 features
    with pytest.raises(ConfigError, match=r"optimized_metric\[1\]='val/mse' is invalid: moons is"):
        validate_against_data(regression, table)


def test_no_pruning_callback_in_a_multi_objective_study(tmp_path):
    storage = f"sqlite:///{tmp_path}/p.db"
    study = optuna.create_study(storage=storage, study_name="p", directions=["maximize"] * 2)
    assert optuna_pruning(storage, "p", study.ask().number) is None  # Optuna cannot prune it


# -- custom_search_space ------------------------------------------------------------------------

SPACE_MODULE = '''
def configure(cfg, trial):
    """README's example."""
    if trial.params["model.depth"] > 2:
        trial.suggest_categorical("model.residual", [True, False])
    if trial.params["optimizer"] == "momentum":
        trial.suggest_float("optimizer.momentum", 0.8, 0.99)


def conditional(cfg, trial):
    """Adam's betas only for adam; a new key with '+'."""
    if trial.params["optimizer"] == "adam":
        trial.suggest_float("optimizer.betas.0", 0.8, 0.95)
    trial.suggest_int("+extra", 1, cfg.limit)


def overlapping(cfg, trial):
    trial.suggest_int("trainer.max_epochs", 1, 2)
'''


class _TwoValues:
    """A launcher whose jobs return [the sum of the numbers sampled, minus it]."""

    def launch(self, batch, initial_job_idx):
        returns = []
        for overrides in batch:
            values = dict(o.split("=", 1) for o in overrides if not o.startswith("optuna."))
            total = sum(float(v) for k, v in values.items() if k != "optimizer")
            job = JobReturn(status=JobStatus.COMPLETED)
            job.return_value = [total, -total]
            returns.append(job)
        return returns


def _fake(tmp_path, launcher, metric, **settings):
    cfg = {"hydra": {"sweep": {"dir": str(tmp_path / "sweep")}, "job": {"name": "t"}}}
    cfg.update(optimized_metric=metric, optimized_mode="max", limit=3)
    settings = {"storage": f"sqlite:///{tmp_path}/s.db", "study_name": "s", "seed": 0, **settings}
    return SimpleNamespace(
        settings=config.OptunaSweeperConf(**settings),
        config=OmegaConf.create(cfg),
        launcher=launcher,
        validate_batch_is_legal=lambda batch: None,
    )


def test_custom_search_space_and_a_pareto_front(tmp_path, monkeypatch):
    (tmp_path / "my_space.py").write_text(SPACE_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("my_space", None)
    fake = _fake(
        tmp_path,
        _TwoValues(),
        ["val/acc", "val/loss"],
        n_trials=6,
        custom_search_space="my_space.conditional",
        direction=["maximize", "maximize"],
    )
    _impl.run_sweep(fake, ["optimizer=choice(adam, sgd)", "trainer.max_epochs=1"])
    study = optuna.load_study(study_name="s", storage=f"sqlite:///{tmp_path}/s.db")
    for t in study.trials:
        assert ("optimizer.betas.0" in t.params) == (t.params["optimizer"] == "adam")
        assert 1 <= t.params["+extra"] <= 3  # cfg.limit: the function reads the sweep's config
    assert {t.params["optimizer"] for t in study.trials} == {"adam", "sgd"}
    results = yaml.safe_load((tmp_path / "sweep" / "optimization_results.yaml").read_text())
    assert list(results)[:3] == ["best_trials", "objectives", "direction"]
    assert results["objectives"] == ["val/acc", "val/loss"]
    assert results["direction"] == ["maximize", "maximize"]
    front = {t.number: t for t in study.best_trials}
    assert [b["number"] for b in results["best_trials"]] == sorted(front)
    best = results["best_trials"][0]
    assert best["values"] == front[best["number"]].values
    assert best["params"] == front[best["number"]].params
    assert "+extra=" + str(best["params"]["+extra"]) in best["overrides"]
    assert best["overrides"][-1] == "hydra.mode=RUN"  # the trial alone, not a new sweep

    overlapping = {"custom_search_space": "my_space.overlapping", "study_name": "o"}
    fake = _fake(tmp_path, _TwoValues(), "val/acc", **overlapping)
    with pytest.raises(SweepError, match="overlapping suggests trainer.max_epochs, which the"):
        _impl.run_sweep(fake, ["trainer.max_epochs=1", "x=interval(0.0, 1.0)"])
    missing = {"custom_search_space": "my_space.nothing", "study_name": "m"}
    fake = _fake(tmp_path, _TwoValues(), "val/acc", **missing)
    with pytest.raises(SweepError, match="custom_search_space='my_space.nothing' is invalid"):
        _impl.run_sweep(fake, ["x=interval(0.0, 1.0)"])
    fake = _fake(tmp_path, _TwoValues(), ["val/acc", "n_params"], sampler="cmaes", study_name="c")
    with pytest.raises(SweepError, match="sampler=cmaes is invalid: CMA-ES optimises one object"):
        _impl.run_sweep(fake, ["x=interval(0.0, 1.0)"])


def test_single_objective_results_keep_their_shape(tmp_path):
    fake = _fake(tmp_path, _TwoValues(), ["val/acc"], n_trials=2, study_name="one")
    fake.launcher.launch = lambda batch, initial_job_idx: [
        SimpleNamespace(status=JobStatus.COMPLETED, return_value=0.5) for _ in batch
    ]
    _impl.run_sweep(fake, ["x=interval(0.0, 1.0)"])
    results = yaml.safe_load((tmp_path / "sweep" / "optimization_results.yaml").read_text())
    assert list(results) == [
        "best_trial", "best_value", "best_params", "best_overrides", "direction", "study_name",
        "storage", "n_trials", "trials", "failures",
    ]  # fmt: skip
    assert results["best_value"] == 0.5 and results["direction"] == "maximize"


def test_the_report_shows_the_pareto_front(tmp_path):
    sweep = tmp_path / "sweep"
    points = [(0.90, 5000), (0.80, 1000), (0.85, 9000), (0.95, 20000)]  # job 2 is dominated
    for num, (acc, n) in enumerate(points):
        job = sweep / str(num)
        (job / ".hydra").mkdir(parents=True)
        (job / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump([f"model.width={n // 10}"]))
        config_yaml = {"optimized_metric": ["val/acc", "n_params"], "seed": 0}
        (job / "config.yaml").write_text(yaml.safe_dump(config_yaml))
        split = {"acc": acc, "f1": acc, "loss": 1 - acc}
        metrics = {"status": "completed", "val": split, "n_params": n, "epochs": 1}
        (job / "metrics.json").write_text(json.dumps(metrics))
    front = [
        {"number": i, "values": [acc, float(n)], "params": {"model.width": n // 10}}
        for i, (acc, n) in enumerate(points)
        if i != 2
    ]
    results = {"best_trials": front, "objectives": ["val/acc", "n_params"]}
    results.update(direction=["maximize", "minimize"], storage=None, study_name="s")
    (sweep / "optimization_results.yaml").write_text(yaml.safe_dump(results))
    report.main([str(sweep)])
    text = (sweep / "report.md").read_text()
    jobs = text.split("## Jobs, best first")[1].split("\n\n")[1].splitlines()
    assert jobs[0].split(" | ")[1:4] == ["model.width", "val/acc", "n_params"]
    pareto = text.split("## Pareto front (3 trials no other beats on every objective)")[1]
    rows = [line.split(" | ") for line in pareto.split("\n\n")[1].splitlines()[2:]]
    assert [r[0].strip("| ") for r in rows] == ["0", "1", "3"]
    assert rows[2][1:] == ["2000", "0.95", "20000 |"]
    assert (sweep / "pareto_front.png").stat().st_size > 1000 and "](pareto_front.png)" in text


# -- the official schema end to end -------------------------------------------------------------


def test_presets_sweep_without_dash_m_and_the_official_class_path_is_deeptunes():
    for preset in ("bayes", "random", "grid"):
        assert _compose(f"hparams_search={preset}").hydra.mode == RunMode.MULTIRUN
    cls = Plugins.instance().class_name_to_class[OFFICIAL]
    assert issubclass(cls, sweeper.OptunaSweeper)  # the official plugin is not installed

    lht = _compose(f"hydra.searchpath=[file://{USER_CONFIGS}]", "hparams_search=mnist_optuna")
    assert lht.hydra.sweeper._target_ == OFFICIAL and lht.hydra.mode == RunMode.MULTIRUN
    sampling = _sampler(lht)
    assert isinstance(sampling.shared, optuna.samplers.TPESampler)
    assert sampling.seed == 1234 and sampling.shared._n_startup_trials == 10
    # sampler_args change a group's node, whose arguments are Optuna's defaults
    tuned = _sampler(
        _compose("hparams_search=bayes", "+hydra.sweeper.sampler_args.n_startup_trials=3")
    )
    assert tuned.shared._n_startup_trials == 3
    assert _settings(lht).direction == "maximize" and _settings(lht).n_jobs == 1


def _sweep(tmp_path, *args, env=None):
    sweep = tmp_path / "sweep"
    ran = run_cli(
        str(ROOT / "train.py"),  # no -m: the search config sets hydra.mode
        *args,
        "data=moons",
        "trainer.max_epochs=1",
        "logger=csv",
        "callbacks=none",
        "hydra.sweeper.n_trials=2",
        f"hydra.sweep.dir={sweep}",
        cwd=tmp_path,
        env=env,
    )
    assert ran.returncode == 0, ran.stderr[-3000:]
    results = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    assert results["trials"]["complete"] == 2 and (sweep / "1" / "metrics.json").is_file()
    return ran, results


@pytest.mark.slow
def test_lightning_hydra_templates_mnist_optuna_runs(tmp_path):
    lht = ["--config-dir", str(USER_CONFIGS), "hparams_search=mnist_optuna"]
    ran, results = _sweep(tmp_path, *lht)
    assert results["direction"] == "maximize" and "sampler TPESampler" in ran.stdout + ran.stderr
    assert set(results["best_params"]) == {
        "optimizer.lr", "data.batch_size", "model.width", "model.depth", "model.activation",
    }  # fmt: skip
    assert "optuna-dashboard sqlite:///" in ran.stdout
    hint = 'pip install "deeptune[dashboard]"'  # only where optuna-dashboard is not installed
    assert (hint in ran.stdout) is not extras.installed("dashboard")


@pytest.mark.slow
def test_a_multi_objective_preset_sweep_writes_its_pareto_front(tmp_path):
    """README's command, with its conditional space; each trial's objectives are its job's."""
    (tmp_path / "my_space.py").write_text(SPACE_MODULE)
    path = os.pathsep.join(p for p in (str(tmp_path), os.environ.get("PYTHONPATH")) if p)
    ran, results = _sweep(
        tmp_path,
        "hparams_search=random",
        "optimized_metric=[val/acc,n_params]",
        "hydra.sweeper.direction=[maximize,minimize]",
        "hydra.sweeper.custom_search_space=my_space.configure",
        "model.depth=choice(3, 4)",  # deep nets: model.residual is sampled too
        env={"PYTHONPATH": path},
    )
    assert results["direction"] == ["maximize", "minimize"] and results["best_trials"]
    study = optuna.load_study(study_name=results["study_name"], storage=results["storage"])
    for t in study.trials:
        assert "model.residual" in t.params
        config = yaml.safe_load((tmp_path / "sweep" / str(t.number) / "config.yaml").read_text())
        assert config["model"]["residual"] == t.params.get("model.residual", False)
        metrics = json.loads((tmp_path / "sweep" / str(t.number) / "metrics.json").read_text())
        assert t.values == [metrics["val"]["acc"], metrics["n_params"]]
    front = ", ".join(str(t["number"]) for t in results["best_trials"])
    assert f"Pareto front: trials {front}" in ran.stdout  # in the summary the sweep ends with
    assert "n_params" in ran.stdout.split("best 2 of 2 jobs by val/acc")[1]  # the 2nd objective
