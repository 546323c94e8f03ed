"""hydra/launcher=slurm and slurm_local: what they ask SLURM for, then real jobs on a real
cluster, submitted as a user does.

The job tests need the single-node test cluster of scripts/slurm/start-slurm.sh (run as root);
without a reachable cluster they are skipped, saying why.
"""

import csv
import json
import re
import shlex
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import torch
from helpers.runs import ROOT, run_cli
from hydra import compose, initialize_config_dir

from deeptune import resolvers
from deeptune.config import CONFIG_DIR

PARTITION = "debug"  # configs/hydra/launcher/slurm_local.yaml
QUICK = ["logger=csv", "threads=1"]  # one torch thread per job: the node has two cores


# -- the request: derived from trainer.devices / num_nodes / accelerator -----------------------


@pytest.mark.parametrize(
    ("devices", "tasks"),
    [(1, 1), (4, 4), ("2", 2), ([0, 1], 2), ("0,1,2", 3), ("auto", 1), (-1, 1)],
)
def test_tasks_per_node_is_the_device_count(devices, tasks):
    assert resolvers.devices_per_node(devices) == tasks


@pytest.mark.parametrize(
    ("overrides", "nodes_tasks_gpus"),
    [
        ([], (1, 1, None)),  # accelerator=auto asks for no GPU
        (["trainer=ddp", "trainer.accelerator=cpu"], (1, 2, None)),
        (["trainer=gpu", "trainer.devices=4"], (1, 4, 4)),
        (["trainer.accelerator=cuda", "trainer.devices=[0,1]", "++trainer.num_nodes=3"], (3, 2, 2)),
    ],
)
def test_launcher_asks_for_what_lightning_will_expect(overrides, nodes_tasks_gpus):
    for launcher in ("slurm", "slurm_local"):
        with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
            cfg = compose(
                "train", [f"hydra/launcher={launcher}", *overrides], return_hydra_config=True
            )
        got = cfg.hydra.launcher
        assert (got.nodes, got.tasks_per_node, got.gpus_per_node) == nodes_tasks_gpus


def test_a_slurm_launcher_without_slurm_is_one_line(tmp_path):
    """Where sbatch is not on PATH (here: a PATH without it): one line naming what is missing
    and what exists instead, exit status 2, and no sweep folder."""
    env = {"PATH": str(Path(sys.executable).parent)}  # python's folder only: no SLURM commands
    assert shutil.which("sbatch", path=env["PATH"]) is None
    for launcher in ("slurm", "slurm_local"):
        result = run_cli(
            str(ROOT / "train.py"), "-m", f"hydra/launcher={launcher}", cwd=tmp_path, env=env
        )
        assert result.returncode == 2, result.stderr
        assert result.stderr.splitlines() == [
            f"error: hydra/launcher='{launcher}' is invalid: no SLURM client here (sbatch and "
            "srun not on PATH): submit from a cluster's login node, or start the single-node "
            "test cluster (scripts/slurm/start-slurm.sh, as root) and use "
            "hydra/launcher=slurm_local"
        ]
        assert not list(tmp_path.iterdir())


# -- real jobs on the test cluster ---------------------------------------------------------------


def slurm(*args: str) -> str:
    return subprocess.run(args, capture_output=True, text=True, timeout=30, check=True).stdout


def cluster_problem() -> str | None:
    """Why no job can run here, or None when the cluster and its accounting answer."""
    hint = "start the test cluster with scripts/slurm/start-slurm.sh"
    if not shutil.which("sinfo"):
        return f"no SLURM client (sinfo) on this machine; {hint}"
    try:
        state = slurm("sinfo", "-h", "-p", PARTITION, "-o", "%a %T")
        # submitit reads job states from accounting: without sacct it waits forever.
        slurm("sacct", "-n", "-X", "-S", "now")
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as err:
        return f"SLURM is not reachable ({err.cmd[0]} failed); {hint}"
    if not re.search(r"^up (idle|mixed|allocated|completing)", state, re.M):
        return f"partition {PARTITION!r} has no usable node ({state.strip() or 'none'}); {hint}"
    return None


@pytest.fixture(scope="module")
def cluster():
    if problem := cluster_problem():
        pytest.skip(problem)


@pytest.fixture
def sweep_dir(tmp_path, cluster):
    """The multirun folder; the test's jobs are cancelled afterwards if one is still queued."""
    path = tmp_path / "sweep"
    yield path
    if ids := job_ids(path):
        subprocess.run(["scancel", *ids], capture_output=True, timeout=30)


def multirun(sweep_dir: Path, *overrides: str, timeout: int = 240):
    return run_cli(
        "train.py",
        "-m",
        "hydra/launcher=slurm_local",
        f"hydra.sweep.dir={sweep_dir}",
        *QUICK,
        *overrides,
        cwd=ROOT,
        timeout=timeout,
    )


def job_ids(sweep_dir: Path) -> list[str]:
    """submitit keeps one .submitit/<id>/ folder per job: "12", or "12_0" in an array."""
    return sorted(p.parent.name for p in sweep_dir.glob(".submitit/*/*_submitted.pkl"))


def sacct_states(ids: list[str], every_run: bool = False) -> dict[str, list[str]]:
    """Job id -> its states in accounting; with every_run, one per allocation (requeues)."""
    jobs = ",".join(ids)
    out = slurm("sacct", "-nXP", "-o", "JobID,State", "-j", jobs, *(["-D"] if every_run else []))
    states: dict[str, list[str]] = {}
    for line in out.splitlines():
        job, state = line.split("|")
        states.setdefault(job, []).append(state.split()[0])  # "CANCELLED by 0" -> CANCELLED
    return states


def final_states(ids: list[str], every_run: bool = False, wait_s: float = 60):
    """sacct's states once every job has ended: accounting trails the job by a moment."""
    deadline = time.monotonic() + wait_s
    while True:
        states = sacct_states(ids, every_run)
        ended = all(
            s and s[-1] not in ("PENDING", "RUNNING", "COMPLETING")
            for s in (states.get(i) for i in ids)
        )
        if ended or time.monotonic() > deadline:
            return states
        time.sleep(1)


def assert_completed(result, sweep_dir: Path, runs: int) -> list[str]:
    """The multirun succeeded, each run wrote metrics.json, SLURM says each job COMPLETED."""
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    for k in range(runs):
        metrics = json.loads((sweep_dir / str(k) / "metrics.json").read_text())
        assert metrics["status"] == "completed"
    assert not (sweep_dir / str(runs)).exists()
    ids = job_ids(sweep_dir)
    assert len(ids) == runs, ids
    assert final_states(ids) == {i: ["COMPLETED"] for i in ids}
    return ids


@pytest.mark.slurm
@pytest.mark.slow
def test_sweep_runs_each_run_as_a_slurm_job(sweep_dir):
    result = multirun(sweep_dir, "optimizer=sgd,adam,momentum", "trainer.max_epochs=2")
    assert_completed(result, sweep_dir, runs=3)
    # The jobs run the submitting interpreter (this venv) by its absolute path.
    script = next(sweep_dir.glob(".submitit/*/*_submission.sh")).read_text()
    assert f" {shlex.quote(sys.executable)} -u -m submitit" in script


@pytest.mark.slurm
@pytest.mark.slow
def test_ddp_job_runs_one_task_per_device(sweep_dir):
    result = multirun(
        sweep_dir,
        "trainer=ddp",
        "trainer.accelerator=cpu",
        "trainer.devices=2",
        "trainer.max_epochs=2",
    )
    (job,) = assert_completed(result, sweep_dir, runs=1)
    script = next(sweep_dir.glob(".submitit/*/*_submission.sh")).read_text()
    assert "--ntasks-per-node=2" in script and "--gpus-per-node" not in script
    # Both SLURM tasks ran (as DDP ranks 0 and 1: Lightning raises on any mismatch).
    for rank in (0, 1):
        log = (sweep_dir / ".submitit" / job / f"{job}_{rank}_log.out").read_text()
        assert f"global_rank={rank}(2)" in log


def optuna_sweeper_available() -> bool:
    from hydra.core.config_store import ConfigStore
    from hydra.core.plugins import Plugins

    Plugins.instance()  # imports the installed Hydra plugins, which register their configs
    return "optuna.yaml" in ConfigStore.instance().repo["hydra"].get("sweeper", {})


@pytest.mark.slurm
@pytest.mark.slow
def test_optuna_sweep_runs_trials_as_slurm_jobs(sweep_dir):
    if not optuna_sweeper_available():
        pytest.skip("hydra/sweeper=optuna is not installed")
    result = multirun(
        sweep_dir,
        "hydra/sweeper=optuna",
        "hydra.sweeper.n_trials=2",
        "optimizer.lr=interval(1e-3,1e-2)",
        "trainer.max_epochs=2",
    )
    assert_completed(result, sweep_dir, runs=2)


@pytest.mark.slurm
@pytest.mark.slow
def test_timed_out_job_is_requeued_and_continues_from_its_checkpoint(sweep_dir):
    """A 1-minute limit and 55 s of training (max_time, so the speed of the machine does not
    matter): SLURM sends USR2 5 s before the limit (up to 30 s earlier: it checks limits every
    30 s), submitit requeues the job into its folder, and train.py (resume=auto) continues from
    checkpoints/last.ckpt.

    An allocation trains for its minute less the process's start-up and the signal's lead: at
    most ~50 s on a quiet machine (55 s always needs a requeue), as little as ~10 s on a
    loaded one, where the job takes several allocations: submitit may requeue it as often as
    it needs (max_num_timeout), which it counts only for signals after 80% of the limit.
    """
    run_dir = sweep_dir / "0"
    overrides = [
        "hydra.launcher.timeout_min=1",
        "hydra.launcher.signal_delay_s=5",
        "hydra.launcher.max_num_timeout=20",
        "+trainer.max_time=00:00:00:55",  # training time, kept in the checkpoint
        "trainer.max_epochs=1000",
        "data.batch_size=4",  # ~0.5 s epochs: a checkpoint well before each signal
        "~callbacks.early_stopping",
    ]
    snapshots = {}  # requeue number -> (last validated epoch, epoch in last.ckpt) at the time
    with ThreadPoolExecutor(1) as pool:
        sweep = pool.submit(multirun, sweep_dir, *overrides, timeout=480)
        while not sweep.done():
            for job, restarts in held_after_requeue(job_ids(sweep_dir)).items():
                snapshots[restarts] = seen, saved = progress(run_dir)
                if saved < seen - 1:  # it would start over: no point in waiting for that
                    slurm("scancel", job)
                    break
                # SLURM holds a requeued job for 2 minutes; the test does not wait for that.
                slurm("scontrol", "update", f"JobId={job}", "StartTime=now")
            time.sleep(1)
        result = sweep.result()

    assert snapshots, "the job finished inside its first allocation: no requeue to test"
    assert any(seen >= 0 for seen, _ in snapshots.values()), snapshots
    for seen, saved in snapshots.values():
        # What the next allocation resumes from is at most the epoch in flight behind.
        assert saved >= seen - 1, f"last.ckpt holds epoch {saved}, training had reached {seen}"
    (job,) = assert_resumed_runs(result, sweep_dir, len(snapshots))
    states = final_states([job], every_run=True)[job]
    assert states == ["REQUEUED"] * len(snapshots) + ["COMPLETED"], states
    epochs = validated_epochs(run_dir)
    assert epochs == sorted(epochs), "the epoch counter went back: training restarted"


def assert_resumed_runs(result, sweep_dir: Path, requeues: int) -> list[str]:
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    assert json.loads((sweep_dir / "0" / "metrics.json").read_text())["status"] == "completed"
    log = (sweep_dir / "0" / "train.log").read_text()  # appended to by every allocation
    resumes = re.findall(r"resum\w*\b.*last\.ckpt", log, re.I)
    assert len(resumes) >= requeues, log[-3000:]
    return job_ids(sweep_dir)


def held_after_requeue(ids: list[str]) -> dict[str, int]:
    """Job -> its requeue count, for the jobs that SLURM holds after a requeue."""
    held = {}
    for job in ids:
        info = subprocess.run(
            ["scontrol", "-o", "show", "job", job], capture_output=True, text=True, timeout=30
        ).stdout
        if "JobState=PENDING" in info and "Reason=BeginTime" in info:
            held[job] = int(re.search(r"Restarts=(\d+)", info)[1])
    return held


def progress(run_dir: Path) -> tuple[int, int]:
    """(last epoch in metrics.csv, epoch stored in last.ckpt), -1 where there is none yet."""
    epochs = validated_epochs(run_dir)
    last = run_dir / "checkpoints" / "last.ckpt"
    saved = (
        torch.load(last, map_location="cpu", weights_only=True)["epoch"] if last.exists() else -1
    )
    return (max(epochs, default=-1), saved)


def validated_epochs(run_dir: Path) -> list[int]:
    path = run_dir / "csv" / "metrics.csv"
    if not path.exists():
        return []
    with path.open() as f:
        return [int(row["epoch"]) for row in csv.DictReader(f) if row.get("val/acc")]
