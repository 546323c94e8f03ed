"""Helpers shared by the scripts/bench_*.py benchmarks: timed child processes, medians, tables.

A child's wall time and peak memory come from `os.wait4` (the kernel's rusage of that one
process), so the figures cover Python's start-up, the imports and everything after them.
"""

import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
TRAIN = ROOT / "train.py"
PYTHON = sys.executable
console = Console(width=None if sys.stdout.isatty() else 160)  # files: no wrapping


@dataclass
class Child:
    """One finished child process."""

    argv: list[str]
    rc: int
    wall_s: float
    maxrss_mib: float  # peak resident set size of the child (ru_maxrss, KiB on Linux)
    cpu_s: float  # user + system time of the child
    stdout: str
    stderr: str


def run_child(
    argv: list[str], cwd: Path | str | None = None, env: dict | None = None, timeout: float = 3600
) -> Child:
    """Run argv to completion; its wall time, peak RSS and CPU time, from os.wait4."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        started = time.perf_counter()
        proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=out, stderr=err)
        deadline = started + timeout
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() > deadline:
                proc.kill()
                pid, status, usage = os.wait4(proc.pid, 0)
                break
            time.sleep(0.005)
        wall = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)  # already reaped: tell Popen
        out.seek(0)
        err.seek(0)
        return Child(
            argv,
            proc.returncode,
            wall,
            usage.ru_maxrss / 1024,
            usage.ru_utime + usage.ru_stime,
            out.read(),
            err.read(),
        )


def child_env(**extra: str) -> dict:
    """The environment for child processes: this one's, with W&B switched off."""
    env = dict(os.environ)
    env.update(WANDB_MODE="disabled")
    env.update(extra)
    return env


def check(child: Child, what: str) -> Child:
    if child.rc != 0:
        tail = "\n".join((child.stdout + child.stderr).strip().splitlines()[-25:])
        raise SystemExit(f"{what} failed (exit status {child.rc}):\n{tail}")
    return child


def median(values) -> float:
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else float("nan")


def verdict(ok: bool) -> str:
    return "[green]✓[/green]" if ok else "[red]✗[/red]"


def load_text() -> str:
    """The 1-minute load average and the cores: benchmarks on a busy machine say so."""
    try:
        load = os.getloadavg()[0]
    except OSError:
        return ""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    busy = "  [yellow](the machine is busy: figures are noisy)[/yellow]" if load > 0.5 else ""
    return f"load average {load:.2f} on {cores} cores{busy}"


def table(title: str, columns: list[str], rows: list[list], caption: str | None = None) -> Table:
    """A rich table; the first column left-aligned, the others right-aligned."""
    t = Table(title=title, caption=caption, header_style="bold")
    for i, name in enumerate(columns):
        t.add_column(name, justify="left" if i == 0 else "right")
    for row in rows:
        t.add_row(*(str(v) for v in row))
    return t
