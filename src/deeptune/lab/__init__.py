"""The lab: each practice of the training-practice literature as a runnable experiment.

`deeptune-lab list`, `deeptune-lab run <name>|all [--budget tiny|small|full]`: every experiment
is a sweep of `configs/experiment/<name>.yaml` run through `train.py -m`, then an analysis that
writes `<out>/<name>/report.md` with a mean ± std table, plots and a verdict computed from the
numbers.
"""
