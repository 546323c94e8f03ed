"""deeptune's Hydra sweeper on current Optuna: `python train.py -m hydra/sweeper=optuna ...`.

config.py holds the settings (hydra.sweeper.*), sweeper.py the Sweeper that Hydra
instantiates, _space.py the search space, _impl.py the sweep loop and _results.py its report.
"""
