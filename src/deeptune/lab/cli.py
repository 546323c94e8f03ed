"""`deeptune-lab`: the training-practice experiments, each one command away.

    deeptune-lab list                                   the experiments, one line each
    deeptune-lab run <name> [override ...]              its sweeps, then <out>/<name>/report.md
    deeptune-lab run all [--budget tiny|small|full]     every experiment (small: < 30 min, 2 CPUs)
        [--out lab] [--jobs 2] [--force] [--analyze-only]

Overrides after the name go to every sweep of the experiment, e.g. `data=moons` to check a claim
on other data. Running the same command again skips finished sweeps and resumes interrupted ones.
"""

import argparse
import json
import os
import re
import sys
import time
from pathlib import Path

from rich.console import Console

from deeptune.config import group_choices
from deeptune.errors import ConfigError
from deeptune.lab.experiment import BUDGETS
from deeptune.lab.experiments import EXPERIMENTS, NAMES
from deeptune.lab.runner import LabError, LabRun, run_experiment
from deeptune.trust import TRUST_KEY, trusting

OVERRIDE_GROUPS = ("model", "data")  # their choices are listed; optimizer, scheduler are named


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="deeptune-lab",
        description=__doc__.splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="\n".join(__doc__.splitlines()[2:]),
    )
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("list", help="the experiments, one line each")
    run = commands.add_parser("run", help="run an experiment (or all) and write its report")
    run.add_argument("name", help=f"all, or one of: {', '.join(EXPERIMENTS)}")
    run.add_argument(
        "overrides", nargs="*", help="train.py overrides for every sweep, e.g. data=moons"
    )
    run.add_argument(
        "--budget",
        choices=BUDGETS,
        default="small",
        help="tiny (a smoke test), small (default: all together < 30 min on 2 CPUs), "
        "full (the experiment yaml's own grid, seeds and epochs)",
    )
    run.add_argument("--out", type=Path, default=Path("lab"), help="output folder (lab)")
    run.add_argument("--jobs", type=int, default=2, help="jobs run at once, 1 thread each (2)")
    run.add_argument(
        "--force", action="store_true", help="rerun sweeps from scratch, replacing earlier results"
    )
    run.add_argument(
        "--analyze-only",
        action="store_true",
        help="rewrite the reports from the sweeps on disk, running nothing",
    )
    run.add_argument("--in-process", action="store_true", help=argparse.SUPPRESS)  # tests
    args, rest = parser.parse_known_args(argv)  # overrides may come after the options too
    if rest and (args.command != "run" or any(a.startswith("-") for a in rest)):
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    if rest:
        args.overrides = [*args.overrides, *rest]
    console = Console()
    if args.command == "list":
        width = max(map(len, EXPERIMENTS))
        for name, exp in EXPERIMENTS.items():
            print(f"{name:<{width}}  {exp.summary}")
        print(overrides_line())
        return 0
    names = list(EXPERIMENTS) if args.name == "all" else [args.name]
    unknown = [n for n in names if n not in EXPERIMENTS]
    if unknown:
        print(
            f"error: unknown experiment {unknown[0]!r}: all, or one of {', '.join(EXPERIMENTS)}",
            file=sys.stderr,
        )
        return 2
    if bad := [o for o in args.overrides if "=" not in o and not o.startswith("~")]:
        print(
            f"error: {bad[0]!r} is not an override (key=value); run takes one experiment, or all",
            file=sys.stderr,
        )
        return 2
    if args.jobs < 1:
        print("error: --jobs must be >= 1", file=sys.stderr)
        return 2
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    lab = LabRun(
        args.budget, args.out, args.jobs, args.overrides, args.force, console, args.in_process
    )
    failed, started = [], time.perf_counter()
    for i, name in enumerate(names, 1):
        exp = EXPERIMENTS[name]
        console.rule(f"[bold]{i}/{len(names)} {name}[/bold] ({args.budget})")
        t0 = time.perf_counter()
        try:
            # The analysis rebuilds jobs from their folders: saved configs are data (trust.py).
            with trusting(_trusts(args.overrides)):
                path, verdict = run_experiment(lab, exp, analyze_only=args.analyze_only)
        except LabError as err:
            print(f"error: {err}", file=sys.stderr)
            failed.append(name)
            continue
        except ConfigError as err:  # a job folder that names a target deeptune does not trust
            print(f"error: {err}", file=sys.stderr)
            return 2
        console.print(f"[bold]verdict[/bold]: {verdict}")
        console.print(f"report: {path}  ({time.perf_counter() - t0:.0f} s)")
    index = write_index(args.out)
    console.rule()
    console.print(f"index: {index}  (total {time.perf_counter() - started:.0f} s)")
    if failed:
        console.print(f"[red]failed[/red]: {', '.join(failed)}")
        return 1
    return 0


def overrides_line() -> str:
    """What `run` passes on to every sweep, with the groups' choices read from the configs."""
    groups = ", ".join(f"{g}={'|'.join(group_choices(g))}" for g in OVERRIDE_GROUPS)
    return (
        f"Every experiment takes overrides after its name: {groups}, optimizer=..., "
        "scheduler=... or any key=value (e.g. deeptune-lab run depth model=cnn data=digits_images)"
    )


def _trusts(overrides: list[str]) -> bool:
    values = [o.partition("=")[2] for o in overrides if o.partition("=")[0] == TRUST_KEY]
    return bool(values) and values[-1].lower() in ("true", "1", "yes")


def write_index(out: Path) -> Path:
    """<out>/README.md: every report present, with its claim and verdict."""
    summaries = []
    for file in sorted(out.glob("*/summary.json")):
        try:
            summaries.append(json.loads(file.read_text()))
        except json.JSONDecodeError:
            continue
    order = {name: i for i, name in enumerate(NAMES)}
    summaries.sort(key=lambda s: order.get(s["name"], len(order)))
    lines = [
        "# The lab",
        "",
        "Each practice of the training-practice literature as a runnable experiment: a sweep "
        "through `train.py`, a table of mean ± std over seeds, plots, and a verdict computed "
        "from the numbers. Re-run one with `deeptune-lab run <name>`, on your own data with "
        "`deeptune-lab run <name> data=<yours>`.",
        "",
        "| experiment | claim | budget | date |",
        "| --- | --- | --- | --- |",
    ]
    for s in summaries:
        claim = s["claim"].replace("|", "\\|")
        lines.append(
            f"| [{s['name']}]({s['name']}/report.md) | {claim} | {s['budget']} | "
            f"{(s.get('date') or '')[:10]} |"
        )
    lines += ["", "## Verdicts", ""]
    for s in summaries:
        lines += [f"**[{s['name']}]({s['name']}/report.md).** {s['verdict']}", ""]
    budgets = sorted({s["budget"] for s in summaries})
    outs = sorted({m.group(1) for s in summaries if (m := re.search(r"--out (\S+)", s["command"]))})
    if len(budgets) == 1 and len(outs) == 1:
        lines += [
            f"All of them again: `deeptune-lab run all --budget {budgets[0]} --out {outs[0]}` "
            "(finished sweeps are skipped; `--force` reruns them). Each report names its own "
            "commands, date and machine.",
            "",
        ]
    walls = [s["wall_s"] for s in summaries if s.get("wall_s") is not None]
    machines = sorted(
        {
            s["machine"].split(", 1 job")[0].split(", 2 jobs")[0]
            for s in summaries
            if s.get("machine")
        }
    )
    if walls:
        lines.append(
            f"Sweeps' wall time, all reports: {sum(walls) / 60:.1f} min"
            + (f" on {'; '.join(machines)}" if machines else "")
            + "."
        )
        lines.append("")
    path = out / "README.md"
    path.write_text("\n".join(lines))
    return path


def cli() -> None:
    sys.exit(main())


if __name__ == "__main__":
    cli()
