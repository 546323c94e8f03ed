"""What made a result: the code version, the library versions, the device and the command.

Recorded in metrics.json, in every checkpoint and in every logger's hyper-parameters, so a
figure found months later in W&B or MLflow says which commit and which torch produced it.
"""

import functools
import platform
import shlex
import subprocess
import sys
from importlib import metadata
from pathlib import Path

PACKAGES = ("torch", "lightning", "hydra-core", "deeptune")


def collect() -> dict:
    """{git: {commit, dirty}, versions: {python, torch, ...}, device, command}."""
    return {
        "git": _git(str(Path(__file__).resolve().parent)),
        "versions": {"python": platform.python_version(), **_versions()},
        "device": device(),
        "command": shlex.join([Path(sys.argv[0]).name, *sys.argv[1:]]) if sys.argv else "",
    }


@functools.cache
def _versions() -> dict:
    out = {}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


@functools.cache
def _git(where: str) -> dict:
    """The commit of the checkout deeptune runs from, and whether it had uncommitted changes;
    nulls for an installed wheel or a machine without git."""

    def git(*args: str) -> str:
        done = subprocess.run(
            ["git", "-C", where, *args], capture_output=True, text=True, timeout=10
        )
        if done.returncode:
            raise OSError(done.stderr.strip())
        return done.stdout.strip()

    try:
        commit = git("rev-parse", "HEAD")
        dirty = bool(git("status", "--porcelain", "--untracked-files=no"))
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}
    return {"commit": commit, "dirty": dirty}


def device() -> str:
    """The GPU's name when torch sees one, else the CPU's model."""
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()
