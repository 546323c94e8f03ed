"""scripts/check_readme.py: the README's checks parse, the tolerances mean what they say, and a
cheap check runs end to end (the whole script: `python scripts/check_readme.py`)."""

import importlib.util

import pytest
from helpers.runs import ROOT

spec = importlib.util.spec_from_file_location("check_readme", ROOT / "scripts" / "check_readme.py")
check_readme = importlib.util.module_from_spec(spec)
spec.loader.exec_module(check_readme)


def test_every_check_of_the_readme_parses_and_shows_its_command():
    checks = check_readme.parse((ROOT / "README.md").read_text())
    commands = [c.command for c in checks]
    assert "python train.py" in commands  # the quick start's first run
    plateau = [c for c in checks if any(e.figure == "leaves_plateau" for e in c.expect)]
    assert plateau and all("data=adding" in c.command for c in plateau)
    assert all(c.expect for c in checks)


def test_a_check_whose_command_is_in_no_code_block_is_refused():
    block = "```bash\npython train.py seed=1\n```\n"
    readme = block + "<!-- check: python train.py seed=2\nexpect: exit = 0 -->"
    with pytest.raises(ValueError, match="seed=2' is in no code block"):
        check_readme.parse(readme)
    block = "```bash\npython train.py a=1 \\\n    b=2\n```\n"
    continued = block + "<!-- check: python train.py a=1 b=2 expect: exit = 0 -->"
    assert check_readme.parse(continued)[0].command == "python train.py a=1 b=2"


@pytest.mark.parametrize(
    ("expectation", "good", "bad"),
    [
        ("test.acc = 0.952 ± 0.01", 0.96, 0.963),
        ("grad_health.max_grad_norm = 385 ± 10%", 420, 430),
        ("grad_health.grad_ratio_first_last = 1.2e-10 ×/ 10", 1.3e-11, 1.3e-9),
        ("best_epoch = 17", 17, 18),
        ("grad_health.verdict = vanishing", "vanishing", "exploding"),
        ('reason ~ "step 6 "', "nan at epoch 1, step 6 (batch 5)", "step 61"),
    ],
)
def test_tolerances(expectation, good, bad):
    item = check_readme.parse_expectation(expectation)
    assert item.holds(good) and not item.holds(bad)
    assert not item.holds(None)


def test_a_quoted_text_may_hold_the_separator():
    readme = (
        '```bash\npython x.py\n```\n<!-- check: python x.py expect: stdout ~ "a; b"; exit = 0 -->'
    )
    items = check_readme.parse(readme)[0].expect
    assert [str(i) for i in items] == ['stdout ~ "a; b"', "exit = 0"]


def test_leaves_plateau_is_the_first_epoch_below_half_the_baseline(tmp_path):
    (tmp_path / "csv").mkdir()
    rows = ["epoch,val/mse", "0,0.17", "0,", "1,0.09", "2,0.05", "3,0.001"]
    (tmp_path / "csv" / "metrics.csv").write_text("\n".join(rows) + "\n")
    assert check_readme.leaves_plateau(tmp_path) == 3  # epoch index 2, counted from 1


def test_a_cheap_check_runs(capsys):
    assert check_readme.main(["--only", "export_table.py wine"]) == 0
    out = capsys.readouterr().out
    assert 'ok   stdout ~ "wrote scratch/wine.csv (178 rows, 13 features)"' in out
    assert out.rstrip().endswith("1 of 1 checks hold")


@pytest.mark.slow
def test_the_exploding_step_checks_hold(capsys):
    """The two lr=50 runs (about 15 s): one stops at a NaN, the clipped one completes."""
    assert check_readme.main(["--only", "optimizer=sgd optimizer.lr=50"]) == 0, (
        capsys.readouterr().out
    )
