"""Run the README's checked commands and compare the figures it quotes with what they produce.

    python scripts/check_readme.py                 # every check (about 3 minutes on 2 CPU cores)
    python scripts/check_readme.py --list          # the checks, without running them
    python scripts/check_readme.py --only lr=50    # the checks whose command contains "lr=50"

A check is an HTML comment in README.md, next to the command it runs (invisible when rendered):

    <!-- check: python train.py model.depth=12 model.activation=sigmoid
         expect: test.acc = 0.104 ± 0.02; grad_health.verdict = vanishing;
                 grad_health.grad_ratio_first_last = 1.2e-10 ×/ 10 -->

The command must appear in one of the README's code blocks as written (so the comment cannot
check something the reader never sees). Each expectation is `<figure> = <quoted value>` with a
tolerance: `± 0.02` (absolute), `± 5%` (relative), `×/ 10` (within a factor of 10), none (equal;
strings always). A figure is a dotted path into the run's metrics.json (`test.acc`,
`grad_health.verdict`), `exit` (the exit status), `leaves_plateau` (the first epoch, counting
from 1, whose val/mse is below half the adding problem's baseline of 0.167), or `stdout`, with
`~ "text"`: the output contains the text.

Each command runs in a scratch folder (its relative paths, `scratch/wine.csv`, land there) with
`python X.py` pointing at this checkout; train.py runs get `hydra.run.dir=<scratch>/<n>`,
`logger=csv` (no figure depends on the logger) and `threads=2` (`--threads`): the README's
figures were measured on a 2-core CPU with the default `threads=auto`, i.e. 2 threads, and
runs on the edge of diverging (lr=50, 12 layers) give other figures with other thread counts.
Exits 1 if any figure is off, listing each check with the figures measured.
"""

import argparse
import csv
import json
import math
import os
import re
import shlex
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHECK = re.compile(r"<!--\s*check:(.*?)-->", re.S)
FENCE = re.compile(r"^```[^\n]*\n(.*?)^```", re.S | re.M)
EXPECT = re.compile(
    r"^(?P<figure>[\w./]+)\s*(?P<op>=|~)\s*(?P<value>\"[^\"]*\"|[^±×]+?)\s*"
    r"(?:(?P<tol>±|×/)\s*(?P<amount>[\d.eE+-]+)\s*(?P<pct>%?))?$"
)
NUMBER = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")
OUTSIDE_QUOTES = re.compile(r';(?=(?:[^"]*"[^"]*")*[^"]*$)')  # the expectations' separator
ADDING_BASELINE = 0.167  # MSE of always predicting 1.0 on the adding problem


@dataclass
class Expectation:
    figure: str
    op: str  # "=" or "~" (contains)
    value: str | float
    tolerance: str | None = None  # "abs", "rel" or "factor"
    amount: float = 0.0

    def holds(self, got) -> bool:
        if got is None:
            return False
        if self.op == "~":
            return str(self.value) in str(got)
        if isinstance(self.value, str):
            return str(got) == self.value
        got = float(got)
        if not math.isfinite(got):
            return False
        if self.tolerance == "factor":
            return got > 0 and abs(math.log(got / self.value)) <= math.log(self.amount)
        if self.tolerance == "rel":
            return abs(got - self.value) <= self.amount * abs(self.value)
        return abs(got - self.value) <= (self.amount if self.tolerance == "abs" else 0.0)

    def __str__(self) -> str:
        value = f'"{self.value}"' if self.op == "~" else self.value
        value = f"{value:g}" if isinstance(value, float) else value
        tol = {"abs": f" ± {self.amount:g}", "rel": f" ± {self.amount:.0%}"}.get(self.tolerance)
        tol = f" ×/ {self.amount:g}" if self.tolerance == "factor" else tol or ""
        return f"{self.figure} {self.op} {value}{tol}"


@dataclass
class Check:
    command: str
    expect: list[Expectation]
    line: int
    measured: dict = field(default_factory=dict)


def parse_expectation(text: str) -> Expectation:
    match = EXPECT.match(" ".join(text.split()))
    if not match:
        raise ValueError(f"cannot read expectation {text!r}: use <figure> = <value> [± x | ×/ x]")
    value: str | float = match["value"].strip()
    if value.startswith('"'):
        value = value[1:-1]
    elif match["op"] == "=" and NUMBER.fullmatch(value):
        value = float(value)  # anything else is a string figure, compared as written
    tolerance, amount = None, 0.0
    if match["tol"] == "±" and match["pct"]:
        tolerance, amount = "rel", float(match["amount"]) / 100
    elif match["tol"] == "±":
        tolerance, amount = "abs", float(match["amount"])
    elif match["tol"] == "×/":
        tolerance, amount = "factor", float(match["amount"])
    return Expectation(match["figure"], match["op"], value, tolerance, amount)


def normalized(command: str) -> str:
    return " ".join(command.replace("\\\n", " ").split())


def parse(readme: str) -> list[Check]:
    """The README's checks; each command must be in one of its code blocks."""
    shown = "\n".join(normalized(block) for block in FENCE.findall(CHECK.sub("", readme)))
    checks = []
    for match in CHECK.finditer(readme):
        body = match[1]
        if "expect:" not in body:
            raise ValueError(f"a check without 'expect:': {body.strip()[:80]!r}")
        command, expect = body.split("expect:", 1)
        command = normalized(command)
        line = readme[: match.start()].count("\n") + 1
        if command not in shown:
            raise ValueError(f"README.md:{line}: {command!r} is in no code block of the README")
        items = [parse_expectation(e) for e in OUTSIDE_QUOTES.split(expect) if e.strip()]
        checks.append(Check(command, items, line))
    return checks


def leaves_plateau(run_dir: Path) -> int | None:
    path = run_dir / "csv" / "metrics.csv"
    if not path.is_file():
        return None
    for row in csv.DictReader(path.open()):
        if row.get("val/mse") and float(row["val/mse"]) < ADDING_BASELINE / 2:
            return int(row["epoch"]) + 1
    return None


def figure(name: str, run_dir: Path, result: subprocess.CompletedProcess):
    if name == "exit":
        return result.returncode
    if name == "stdout":
        return result.stdout + result.stderr
    if name == "leaves_plateau":
        return leaves_plateau(run_dir)
    path = run_dir / "metrics.json"
    value = json.loads(path.read_text()) if path.is_file() else None
    for key in name.split("."):
        value = value.get(key) if isinstance(value, dict) else None
    return value


def argv(command: str, run_dir: Path, threads: int) -> list[str]:
    words = shlex.split(command)
    if words[0] == "python" and not words[1].startswith("-"):
        words[0], words[1] = sys.executable, str(ROOT / words[1])
        if Path(words[1]).name == "train.py":
            own = any(w.startswith("hydra.run.dir=") for w in words)  # a later command reads it
            words += [*([] if own else [f"hydra.run.dir={run_dir}"]), "logger=csv"]
            words.append(f"threads={threads}")
    return words


def run_folder(command: str, work: Path, n: int) -> Path:
    """Where the command's run lands: its own hydra.run.dir, or one the check gives it."""
    own = [w.split("=", 1)[1] for w in shlex.split(command) if w.startswith("hydra.run.dir=")]
    return work / own[-1] if own else work / f"run_{n}"


def run(check: Check, work: Path, n: int, threads: int) -> bool:
    run_dir = run_folder(check.command, work, n)
    started = time.perf_counter()
    # This checkout's deeptune, whichever one the environment has installed.
    path = os.pathsep.join([str(ROOT / "src"), *filter(None, [os.environ.get("PYTHONPATH")])])
    env = {**os.environ, "PYTHONPATH": path, "WANDB_MODE": "disabled"}
    result = subprocess.run(
        argv(check.command, run_dir, threads), cwd=work, env=env, capture_output=True, text=True
    )
    check.measured["seconds"] = round(time.perf_counter() - started, 1)
    ok = True
    for item in check.expect:
        got = figure(item.figure, run_dir, result)
        good = item.holds(got)
        ok &= good
        shown = "(found)" if item.op == "~" and good else got
        if item.figure == "stdout" and not good:
            shown = "(not found)"
        if isinstance(shown, float):
            shown = f"{shown:.4g}"
        print(f"    {'ok  ' if good else 'OFF '} {item}   measured: {shown}")
    if (
        not ok
        and result.returncode not in (0,)
        and not any(e.figure == "exit" for e in check.expect)
    ):
        print("    " + "\n    ".join((result.stdout + result.stderr).strip().splitlines()[-5:]))
    return ok


def main(args: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--readme", type=Path, default=ROOT / "README.md")
    parser.add_argument("--only", action="append", default=[], metavar="TEXT")
    parser.add_argument("--list", action="store_true", help="list the checks, run nothing")
    parser.add_argument("--threads", type=int, default=2, help="torch threads of train.py runs")
    opts = parser.parse_args(args)
    checks = parse(opts.readme.read_text())
    if opts.only:
        checks = [c for c in checks if any(text in c.command for text in opts.only)]
    if not checks:
        print("no check matches", file=sys.stderr)
        return 2
    failed = []
    with tempfile.TemporaryDirectory(prefix="check_readme_") as work:
        for n, check in enumerate(checks):
            print(f"README.md:{check.line}: {check.command}")
            if opts.list:
                for item in check.expect:
                    print(f"    {item}")
                continue
            if not run(check, Path(work), n, opts.threads):
                failed.append(check)
            print(f"    ({check.measured['seconds']} s)")
    if opts.list:
        return 0
    print(f"{len(checks) - len(failed)} of {len(checks)} checks hold")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
