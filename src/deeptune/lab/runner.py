"""Running an experiment: each sweep through `train.py -m` in a subprocess, then the analysis.

A sweep folder holds `lab.json`, the lab's record of the command that made it. Running the same
command again skips a sweep that finished (every job has its metrics.json); one that was
interrupted is launched again into the same folder, where `resume=auto` continues each
interrupted job from its last checkpoint and a finished job is restored from its own (no epoch
is trained again; its metrics.json, the original timing included, is kept). A folder made by
another command (another budget, other overrides) is only replaced with --force.
"""

import datetime
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console

from deeptune.lab.experiment import Context, Experiment, Sweep, SweepRun
from deeptune.lab.report import machine_info
from deeptune.sweeps.report import read_jobs

RECORD = "lab.json"
LOG = "lab.log"
# Quiet, light jobs: the lab reads csv/metrics.csv and metrics.json, nothing else.
QUIET = (
    "logger=csv",
    "callbacks.progress_bar=null",
    "callbacks.model_summary=null",
    "callbacks.grad_health.plot=false",
)


class LabError(RuntimeError):
    """A sweep that cannot run or did not run; the message says what to do."""


def sweep_args(exp: Experiment, sweep: Sweep, budget: str, overrides: list[str]) -> list[str]:
    """The training overrides of one sweep: what identifies its results."""
    args = [f"experiment={exp.name}", *sweep.args(budget), *overrides, *QUIET]
    return [*args, "threads=1"] if sweep.serial else args


def launcher_args(sweep: Sweep, jobs: int) -> list[str]:
    if jobs > 1 and not sweep.serial:
        return ["hydra/launcher=joblib", f"hydra.launcher.n_jobs={jobs}"]
    return []


def launch_args(args: list[str], sweep: Sweep, jobs: int) -> list[str]:
    """What train.py gets: the sweep's overrides, the launcher, and one torch thread per job
    whatever `--jobs` and the machine's cores (unless an override sets `threads`). The thread
    count orders floating-point sums, so it changes the figures: on 2 cores, depth 16 reached
    val acc 0.951 ± 0.011 with 1 thread per job and 0.941 ± 0.006 with 2 (`--jobs 1` gave each
    job both cores); the lab's small nets gain nothing from a second thread."""
    threads = [] if any(a.startswith("threads=") for a in args) else ["threads=1"]
    return [*args, *launcher_args(sweep, jobs), *threads]


def display(args: list[str]) -> str:
    return "python train.py -m " + " ".join(shlex.quote(a) for a in args)


def now() -> str:
    return datetime.datetime.now().astimezone().isoformat(timespec="seconds")


def job_states(folder: Path) -> dict[str, int]:
    states: dict[str, int] = {}
    for job in read_jobs(folder) if folder.is_dir() else []:
        state = (job["metrics"] or {}).get("status", "completed") if job["metrics"] else "missing"
        states[state] = states.get(state, 0) + 1
    return states


@dataclass
class LabRun:
    """How `deeptune-lab run` runs: the budget, the output folder and the launch settings."""

    budget: str
    out: Path
    jobs: int = 2
    overrides: list[str] = field(default_factory=list)
    force: bool = False
    console: Console = field(default_factory=Console)
    in_process: bool = False


def run_sweep(lab: LabRun, exp: Experiment, sweep: Sweep) -> SweepRun:
    """Run (or resume, or skip) one sweep; its SweepRun with the lab's record."""
    folder = lab.out.resolve() / exp.name / "runs" / sweep.name
    args = sweep_args(exp, sweep, lab.budget, lab.overrides)
    shown = lab.out / exp.name / "runs" / sweep.name
    command = display([*launch_args(args, sweep, lab.jobs), f"hydra.sweep.dir={shown}"])
    record = _previous_record(folder, args, lab.force)
    states = job_states(folder)
    finished = record and record.get("finished") and states
    if finished and (record.get("returncode") == 0 or "missing" not in states):
        lab.console.print(f"  [dim]{sweep.name}: done earlier ({_states(states)}), skipped[/dim]")
        return SweepRun(sweep, folder, command, record)
    serial = not launcher_args(sweep, lab.jobs)
    threads = next((int(a[8:]) for a in args if a.startswith("threads=") and a[8:].isdigit()), 1)
    record = {
        "args": args,
        "command": command,
        "budget": lab.budget,
        "started": (record or {}).get("started") or now(),
        "machine": machine_info(1 if serial else lab.jobs, threads),
        "wall_s": (record or {}).get("wall_s") or 0.0,
    }
    _write_record(folder, record)
    lab.console.print(f"  {sweep.name}: {sweep.what} ...")
    started = time.perf_counter()
    returncode = _launch(folder, launch_args(args, sweep, lab.jobs), lab.in_process and serial)
    wall = time.perf_counter() - started
    states = job_states(folder)
    record.update(finished=now(), returncode=returncode, wall_s=round(record["wall_s"] + wall, 1))
    _write_record(folder, record)
    line = f"  {sweep.name}: {_states(states) or 'no job'} in {wall:.0f} s"
    lab.console.print(line + ("" if returncode == 0 else f" (exit status {returncode})"))
    if not states or (returncode != 0 and "missing" in states):
        lines = [line for line in (folder / LOG).read_text().splitlines() if line.strip()]
        if lines and lines[-1].startswith("error: "):  # train.py's one-line config error
            raise LabError(_cannot_run(exp, lab.overrides, lines[-1][len("error: ") :], folder))
        raise LabError(
            f"sweep {sweep.name} of {exp.name} failed (exit status {returncode}); the end of "
            f"{folder / LOG}:\n" + "\n".join(lines[-15:])
        )
    return SweepRun(sweep, folder, command, record)


def _cannot_run(exp: Experiment, overrides: list[str], why: str, folder: Path) -> str:
    """One line: the experiment cannot take these overrides, train.py's reason, and the groups
    its yaml chooses itself that the overrides replaced (the likely cause)."""
    given = f" with {' '.join(overrides)}" if overrides else ""
    own = _own_choices(exp.name)
    replaced = [
        f"{group}={own[group]}"
        for group, _, choice in (o.partition("=") for o in overrides)
        if group in own and choice != own[group]
    ]
    built = f" (it is built on {' '.join(replaced)})" if replaced else ""
    return f"{exp.name} cannot run{given}{built}: {why} ({folder / LOG})"


def _own_choices(name: str) -> dict[str, str]:
    """The config groups the experiment's yaml sets itself (`- override /model: rnn`)."""
    from omegaconf import OmegaConf

    from deeptune.config import CONFIG_DIR

    config = OmegaConf.to_container(OmegaConf.load(CONFIG_DIR / "experiment" / f"{name}.yaml"))
    defaults = config.get("defaults") or []
    own = {}
    for entry in defaults:
        for key, value in entry.items() if isinstance(entry, dict) else ():
            own[key.removeprefix("override ").strip().lstrip("/")] = str(value)
    return own


def _previous_record(folder: Path, args: list[str], force: bool) -> dict | None:
    """The lab's record of the sweep already in `folder`, if the same command made it; a folder
    made by another command is replaced only with --force."""
    record_file = folder / RECORD
    record = json.loads(record_file.read_text()) if record_file.is_file() else None
    if folder.exists() and (force or record is None or record.get("args") != args):
        if not force:
            made_by = display(record["args"]) if record else "no lab command (no lab.json)"
            raise LabError(
                f"{folder} holds a sweep made by {made_by}; rerun with --force to replace it, "
                "or pick another --out"
            )
        shutil.rmtree(folder)
        return None
    return record


def _write_record(folder: Path, record: dict) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / RECORD).write_text(json.dumps(record, indent=2) + "\n")


def _launch(folder: Path, args: list[str], in_process: bool) -> int:
    """`train.py -m args` into `folder`, logged to lab.log; its exit status. Finished jobs that
    the relaunch restores from their checkpoints keep their original metrics.json."""
    kept = _completed_metrics(folder)
    argv = [sys.executable, "-m", "deeptune.train", "-m", *args, f"hydra.sweep.dir={folder}"]
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "WANDB_MODE": os.environ.get("WANDB_MODE", "disabled"),
    }
    with open(folder / LOG, "a") as log:
        log.write(f"\n$ {shlex.join(argv)}\n")
        log.flush()
        if in_process:
            returncode = _train_in_process(argv[4:])
        else:
            returncode = subprocess.run(
                argv, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=os.getcwd()
            ).returncode
    for path, text in kept.items():
        path.write_text(text)
    return returncode


def _train_in_process(args: list[str]) -> int:
    """`train.py -m args...` in this process, with the basic launcher: what a subprocess would
    do without the seconds of imports it costs (the tests run every experiment this way)."""
    from hydra.core.global_hydra import GlobalHydra

    from deeptune.train import cli

    saved = sys.argv
    sys.argv = ["train.py", "-m", *args, *([] if "threads=1" in args else ["threads=1"])]
    GlobalHydra.instance().clear()
    try:
        cli()
        return 0
    except SystemExit as err:
        return err.code if isinstance(err.code, int) else 1
    finally:
        sys.argv = saved
        GlobalHydra.instance().clear()


def _states(states: dict[str, int]) -> str:
    return ", ".join(f"{n} {state}" for state, n in sorted(states.items()))


def _completed_metrics(folder: Path) -> dict[Path, str]:
    kept = {}
    for path in folder.glob("*/metrics.json"):
        text = path.read_text()
        try:
            if json.loads(text).get("status") == "completed":
                kept[path] = text
        except json.JSONDecodeError:
            continue
    return kept


def run_experiment(lab: LabRun, exp: Experiment, analyze_only: bool = False) -> tuple[Path, str]:
    """Run an experiment's sweeps, write <out>/<name>/report.md; (path, verdict)."""
    exp_dir = lab.out.resolve() / exp.name
    exp_dir.mkdir(parents=True, exist_ok=True)
    runs = {}
    for sweep in exp.sweeps_at(lab.budget):
        if analyze_only:
            folder = exp_dir / "runs" / sweep.name
            record_file = folder / RECORD
            record = json.loads(record_file.read_text()) if record_file.is_file() else {}
            runs[sweep.name] = SweepRun(sweep, folder, record.get("command", ""), record)
            continue
        runs[sweep.name] = run_sweep(lab, exp, sweep)
    command = f"deeptune-lab run {exp.name} --budget {lab.budget} --out {lab.out}"
    command += "".join(f" {shlex.quote(o)}" for o in lab.overrides)
    ctx = Context(exp, exp_dir, lab.budget, command, runs)
    report = exp.analyze(ctx)
    wall = sum((r.record or {}).get("wall_s") or 0.0 for r in runs.values())
    path = report.write(wall_s=wall)
    return path, report.verdict
