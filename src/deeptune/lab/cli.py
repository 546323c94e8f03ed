"""`deeptune-lab`: the training-practice experiments, each one command away.

    deeptune-lab list                                   the experiments, one line each
    deeptune-lab run <name> [override ...]              its sweeps, then <out>/<name>/report.md
    deeptune-lab run all [--budget tiny|small|full]     every experiment (small: < 30 min, 2 CPUs)
        [--out lab] [--jobs 2] [--force] [--analyze-only]

Overrides after the name go to every sweep of the experiment, e.g. `data=moons` to check a claim
on other data. Running the same command again skips finished sweeps and resumes interrupted ones.
"""

import argparse
import os
import sys
import time
from pathlib import Path

from rich.console import Console

from deeptune.lab.core import BUDGETS, write_index
from deeptune.lab.experiments import EXPERIMENTS
from deeptune.lab.runner import LabError, run_experiment


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
    failed, started = [], time.perf_counter()
    for i, name in enumerate(names, 1):
        exp = EXPERIMENTS[name]
        console.rule(f"[bold]{i}/{len(names)} {name}[/bold] ({args.budget})")
        t0 = time.perf_counter()
        try:
            path, verdict = run_experiment(
                exp,
                args.budget,
                args.out,
                jobs=args.jobs,
                overrides=args.overrides,
                force=args.force,
                console=console,
                analyze_only=args.analyze_only,
                in_process=args.in_process,
            )
        except LabError as err:
            print(f"error: {err}", file=sys.stderr)
            failed.append(name)
            continue
        console.print(f"[bold]verdict[/bold]: {verdict}")
        console.print(f"report: {path}  ({time.perf_counter() - t0:.0f} s)")
    index = write_index(args.out)
    console.rule()
    console.print(f"index: {index}  (total {time.perf_counter() - started:.0f} s)")
    if failed:
        console.print(f"[red]failed[/red]: {', '.join(failed)}")
        return 1
    return 0


def cli() -> None:
    sys.exit(main())


if __name__ == "__main__":
    cli()
