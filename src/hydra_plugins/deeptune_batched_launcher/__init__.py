# `hydra/launcher=batched`: the jobs of a sweep that differ only in a member's keys, fitted as one
# vectorised model (deeptune.run.batched).
