"""Report on a finished sweep: python scripts/report.py multirun/<date>/<time> [--metric test/acc]

The same as the `deeptune-report` console script; see src/deeptune/sweeps/report.py.
"""

from deeptune.sweeps.report import main

if __name__ == "__main__":
    main()
