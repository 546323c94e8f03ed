"""deeptune's default sweeper: Hydra's basic sweeper that continues a sweep stopped by a signal
(`python train.py -m ...`; hydra/sweeper=basic is Hydra's own, which starts over)."""
