"""How fast train.py answers when it does not train: --help, --cfg job and config errors.

    python scripts/bench_cli.py [--repeats 5] [--quick] [--no-reference]

Each case is timed as the median wall time of N fresh processes (os.wait4), then run once more
under `python -X importtime` to see whether torch or lightning got imported and which imports
cost the most. Target (issue 8): every case under 1.5 s, without importing torch or lightning;
`trainer=gpu` on a machine without a GPU (issue 17) needs torch to know, so its target is 3 s
without lightning (it is skipped where torch sees a GPU: there it would train).
Reference rows time bare imports (python itself, hydra, torch, lightning) for comparison.
"""

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _bench import (  # noqa: E402
    PYTHON,
    TRAIN,
    child_env,
    console,
    load_text,
    median,
    run_child,
    table,
    verdict,
)

TARGET_S = 1.5

# (name, train.py arguments, expected exit status)
CASES = [
    ("--help", ["--help"], 0),
    ("--cfg job", ["--cfg", "job"], 0),
    ("value error", ["model.depth=0"], 2),
    ("group typo", ["optimizer=adamm"], 2),
    ("unknown key", ["model.widht=64"], None),  # Hydra's own error; its status is Hydra's
    ("missing data file", ["data=csv", "data.source.path=no_such_file.csv"], 2),
]
# Cases that must import torch to answer: name -> (target in seconds, the packages allowed)
NEEDS_TORCH = {"trainer=gpu, no GPU": (3.0, ("torch",))}


def gpu_cases() -> list:
    """`trainer=gpu` where torch sees no GPU (asked of torch in a child: the bench imports none)."""
    probe = run_child([PYTHON, "-c", "import torch; print(torch.cuda.is_available())"])
    return [] if probe.stdout.strip() == "True" else [("trainer=gpu, no GPU", ["trainer=gpu"], 2)]


REFERENCES = [
    ("python -c pass", "pass"),
    ("import hydra", "import hydra"),
    ("import torch", "import torch"),
    ("import lightning", "import lightning"),
]


def import_times(stderr: str) -> dict[str, float]:
    """`-X importtime` lines -> {package: seconds}: each import of a package made from another
    package (or from the program) counts, with everything it imported in turn."""
    lines = []
    for line in stderr.splitlines():
        if not line.startswith("import time:") or line.count("|") != 2:
            continue
        _, cumulative, name = line.split("|")
        if not cumulative.strip().isdigit():
            continue  # the header line
        level = (len(name) - len(name.lstrip()) - 1) // 2
        lines.append((level, name.strip(), int(cumulative) / 1e6))
    totals: dict[str, float] = {}
    stack: list[str] = []  # the enclosing imports; the output lists children before parents
    for level, name, seconds in reversed(lines):
        del stack[level:]
        root, parent = name.split(".")[0], stack[-1].split(".")[0] if stack else None
        if root != parent:
            totals[root] = totals.get(root, 0.0) + seconds
        stack.append(name)
    return totals


def slowest(imports: dict[str, float], n: int = 4) -> str:
    """The n slowest third-party packages (inclusive: sklearn's time includes scipy's)."""
    skip = {"deeptune", "encodings", "site", "_frozen_importlib_external"}
    top = sorted(
        ((s, name) for name, s in imports.items() if name not in skip and s >= 0.005), reverse=True
    )
    return ", ".join(f"{name} {s:.2f}" for s, name in top[:n])


def first_line(text: str) -> str:
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.startswith("import time:")]
    return lines[0][:110] if lines else ""


def time_case(argv: list[str], repeats: int, cwd: str) -> tuple[list, object, dict]:
    env = child_env()
    runs = [run_child(argv, cwd=cwd, env=env) for _ in range(repeats)]
    traced = run_child([argv[0], "-X", "importtime", *argv[1:]], cwd=cwd, env=env)
    return runs, traced, import_times(traced.stderr)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=5, help="fresh processes per case")
    parser.add_argument("--quick", action="store_true", help="one process per case, no references")
    parser.add_argument("--no-reference", action="store_true", help="skip the bare-import rows")
    args = parser.parse_args()
    if args.quick:
        args.repeats, args.no_reference = 1, True
    console.print(load_text())
    rows, messages, all_ok = [], [], True
    with tempfile.TemporaryDirectory(prefix="bench_cli_") as cwd:  # run folders land here
        for name, extra, expected in CASES + gpu_cases():
            runs, traced, imports = time_case([PYTHON, str(TRAIN), *extra], args.repeats, cwd)
            wall = median(r.wall_s for r in runs)
            rc = runs[0].rc
            target, allowed = NEEDS_TORCH.get(name, (TARGET_S, ()))
            heavy = [m for m in ("torch", "lightning") if m in imports and m not in allowed]
            ok = wall < target and not heavy and (expected is None or rc == expected)
            all_ok &= ok
            message = first_line(runs[0].stderr) if rc else ""
            messages.append(f"{name}: exit {rc}  {message}" if message else "")
            rows.append(
                [
                    name,
                    f"{wall:.2f}",
                    f"{min(r.wall_s for r in runs):.2f}",
                    rc,
                    "yes" if "torch" in imports else "no",
                    "yes" if "lightning" in imports else "no",
                    slowest(imports),
                    f"< {target:g} s: {verdict(ok)}",
                ]
            )
            console.print(f"{name:18} {wall:.2f} s  exit {rc}", highlight=False)
        if not args.no_reference:
            for name, code in REFERENCES:
                runs, _, imports = time_case([PYTHON, "-c", code], args.repeats, cwd)
                wall = median(r.wall_s for r in runs)
                rows.append(
                    [
                        f"(ref) {name}",
                        f"{wall:.2f}",
                        f"{min(r.wall_s for r in runs):.2f}",
                        runs[0].rc,
                        "yes" if "torch" in imports else "no",
                        "yes" if "lightning" in imports else "no",
                        slowest(imports),
                        "",
                    ]
                )
    columns = [
        "case",
        "median s",
        "min s",
        "exit",
        "torch?",
        "lightning?",
        "slowest imports, s (-X importtime, inclusive)",
        "target",
    ]
    title = f"python train.py without training: median of {args.repeats} fresh process(es)"
    console.print(table(title, columns, rows))
    for line in filter(None, messages):
        console.print(line, highlight=False)
    console.print(
        f"target: every case < {TARGET_S} s without importing torch or lightning "
        f"(trainer=gpu without a GPU: < 3 s, torch only): " + verdict(all_ok)
    )


if __name__ == "__main__":
    main()
