"""Bad input, as a new user types it (tests/helpers/fuzz.py draws the cases with a fixed seed):
never a raw traceback, every refusal one line naming a key, nothing the schema forbids accepted.

`pytest tests/test_fuzz.py -s` prints the counts.
"""

import json
import random
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
from helpers.fuzz import Case, Outcome, cases, judge
from helpers.runs import ROOT, run_cli

CASES = cases()
pytestmark = pytest.mark.xdist_group("fuzz")  # one worker judges the cases once


@pytest.fixture(scope="module")
def judged(tmp_path_factory) -> list[tuple[Case, Outcome]]:
    out = tmp_path_factory.mktemp("fuzz")
    return [(case, judge(case, out / str(i))) for i, case in enumerate(CASES)]


def test_the_case_list_is_reproducible_and_covers_every_class():
    assert len(CASES) >= 300 and [c.overrides for c in cases()] == [c.overrides for c in CASES]
    kinds = Counter(kind for case in CASES for kind in case.kinds)
    for kind in (
        "negative", "zero", "huge", "nan", "wrong type", "list", "unbalanced", "empty", "null",
        "unicode", "long string", "unknown key", "unknown choice",
    ):  # fmt: skip
        assert kinds[kind] >= 5, kind
    assert sum(len(c.kinds) == 2 for c in CASES) >= 40  # pairs


def test_every_bad_override_is_one_line_naming_a_key(judged):
    counts = Counter()
    for case, outcome in judged:
        kind = "pair" if len(case.kinds) > 1 else case.kinds[0]
        counts[("crash" if outcome.crash else "accepted" if outcome.ok else "refused", kind)] += 1
        assert outcome.crash is None, (case.bad, outcome.crash)  # a raw traceback
        if outcome.ok:
            assert not case.must_fail, f"accepted {case.bad}"
            continue
        assert "\n" not in outcome.message, (case.bad, outcome.message)
        assert outcome.key and outcome.key in outcome.message, (case.bad, outcome.message)
    refused = sum(n for (what, _), n in counts.items() if what == "refused")
    accepted = sum(n for (what, _), n in counts.items() if what == "accepted")
    print(f"\n{len(judged)} cases: {refused} refused in one line, {accepted} accepted, 0 crashed")
    for (what, kind), n in sorted(counts.items()):
        print(f"  {what:9} {kind:15} {n}")


@pytest.mark.slow
def test_a_sample_as_real_commands(judged, tmp_path):
    """20 cases as subprocesses, the way a user runs them: the same verdict as in process, no
    traceback, and a non-zero exit says one line that names the key."""
    rng = random.Random(7)
    refused = [(c, o) for c, o in judged if not o.ok]
    accepted = [(c, o) for c, o in judged if o.ok]
    sample = rng.sample(refused, 15) + rng.sample(accepted, 5)

    def run(item):
        i, (case, outcome) = item
        short = (
            []
            if any(o.startswith("trainer.max_epochs") for o in case.overrides)
            else ["trainer.max_epochs=1"]
        )
        folder = tmp_path / str(i)
        ran = run_cli(
            str(ROOT / "train.py"), f"hydra.run.dir={folder}", *short, *case.overrides, cwd=tmp_path
        )
        return case, outcome, ran, folder

    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(run, enumerate(sample)))
    for case, outcome, ran, folder in results:
        where = f"{case.bad}: {ran.stderr[-2000:]}"
        assert "Traceback" not in ran.stdout + ran.stderr, where
        errors = [ln for ln in ran.stderr.splitlines() if ln.startswith("error: ")]
        if not outcome.ok:
            assert ran.returncode == 2 and len(errors) == 1, where
            assert errors[0] == f"error: {outcome.message}", where
        elif ran.returncode == 0:
            assert json.loads((folder / "metrics.json").read_text())["status"] == "completed"
        else:  # accepted, then training went wrong (e.g. optimizer.lr=1e300): said in one line
            assert ran.returncode == 1 and len(errors) == 1, where
