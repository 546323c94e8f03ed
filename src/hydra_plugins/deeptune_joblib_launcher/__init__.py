"""`hydra/launcher=joblib`: hydra-joblib-launcher's parallel local jobs, each worker process on a
GPU of its own (or `trials_per_gpu` workers per GPU)."""
