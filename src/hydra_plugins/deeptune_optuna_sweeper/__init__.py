"""deeptune's Hydra sweeper on current Optuna: `python train.py -m hydra/sweeper=optuna ...`.

config.py holds the settings (hydra.sweeper.*), sweeper.py the Sweeper that Hydra
instantiates, _space.py the search space, _impl.py the sweep loop, _sampling.py each trial's
sampler, _shared.py what lets several sweeps run one study, and _results.py the report.
"""
