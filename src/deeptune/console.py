"""What a run tells its user on the console, and what it keeps for its log file.

The console tells a short story: what is trained on what, a progress bar on a terminal, the
final table and the run folder (with the `wandb sync` command of an offline W&B run). The
details go to `<run>/train.log` only: each rank's metrics (`DETAILS`), Lightning's model summary
and checkpoint notes, W&B's own lines (silenced in deeptune.loggers.wandb). configs/hydra/
default.yaml routes those loggers to the file handler alone; outside a Hydra job (the tests'
in-process runs) they propagate as any logger does.
"""

import logging

DETAILS = logging.getLogger("deeptune.details")  # train.log only (configs/hydra/default.yaml)


def say(message: str) -> None:
    """One line of the run's story: on stdout, and in the log file."""
    print(message, flush=True)
    DETAILS.info(message)


def quiet_lightning() -> None:
    """Drop the console handler that `import lightning` gives its own logger ("INFO: ..."):
    under Hydra the root logger prints and files the same records, so each line came twice."""
    if not logging.getLogger().handlers:
        return  # no Hydra logging: Lightning's handler is the only one that prints
    lightning = logging.getLogger("lightning")
    for handler in list(lightning.handlers):
        if type(handler) is logging.StreamHandler:
            lightning.removeHandler(handler)
