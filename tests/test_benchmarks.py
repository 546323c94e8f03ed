"""The benchmark scripts run and print their figures (smoke tests: timings are not checked)."""

import pytest
from helpers.runs import ROOT, run_cli

EXPECTED = {
    "bench_overhead.py": "fit time ratio",
    "bench_cli.py": "--cfg job",
    "bench_sweep.py": "parallel / sequential",
    "bench_scaling.py": "ms/epoch",
    "bench_batched.py": "x faster",
}


@pytest.mark.slow
@pytest.mark.parametrize("script", list(EXPECTED))
def test_benchmark_runs_quick(script, tmp_path):
    result = run_cli(str(ROOT / "scripts" / script), "--quick", cwd=tmp_path, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert EXPECTED[script] in result.stdout, result.stdout[-3000:]
