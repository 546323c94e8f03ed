"""DDP under Hydra: the processes Lightning starts for ranks 1..n-1 run this job, not the command.

Lightning restarts `sys.argv` for every extra rank. Inside a multirun that argv is the whole
sweep (`-m optimizer=sgd,adam ...`), so each rank would run a sweep of its own into a second
folder. The children get this job's own overrides and folder instead.
"""

import os
import sys

OUTPUT_DIR_VAR = "DEEPTUNE_OUTPUT_DIR"  # the folder rank 0 settled on (after any resume)
# Set by Lightning in the launching process; left behind, they make the next job of a multirun
# believe its ranks are started by someone else, and it waits for them forever.
LAUNCH_VARS = ("LOCAL_RANK", "NODE_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")
_environ_before: dict[str, str | None] = {}


def child_command(local_rank: int) -> tuple[list[str], str]:
    from hydra.core.hydra_config import HydraConfig
    from hydra.utils import get_original_cwd

    import __main__

    hydra_cfg = HydraConfig.get()
    if __main__.__spec__ is None:
        command = [sys.executable, os.path.abspath(sys.argv[0])]
    else:
        command = [sys.executable, "-m", __main__.__spec__.name]
    # The user's config folder (--config-dir, where data=mine or model=mynet live) is no
    # override: without it a child rank could not compose the job.
    for source in hydra_cfg.runtime.config_sources:
        if source.provider == "command-line" and source.schema == "file":
            command += ["--config-dir", source.path]
    out_dir = os.environ.get(OUTPUT_DIR_VAR, hydra_cfg.runtime.output_dir)
    command += [
        *hydra_cfg.overrides.task,
        f'hydra.run.dir="{out_dir}"',
        f"hydra.job.name={hydra_cfg.job.name}_rank{local_rank}",
        "hydra.output_subdir=null",  # rank 0 alone writes .hydra/
    ]
    return command, get_original_cwd()


def is_child_rank() -> bool:
    return int(os.environ.get("LOCAL_RANK", "0")) > 0 and OUTPUT_DIR_VAR in os.environ


def use_job_commands(output_dir: str) -> None:
    """Make Lightning start extra ranks with `child_command` (it calls this hook by name)."""
    from lightning.pytorch.strategies.launchers import subprocess_script

    _environ_before.clear()
    _environ_before.update({k: os.environ.get(k) for k in LAUNCH_VARS})
    os.environ[OUTPUT_DIR_VAR] = output_dir
    subprocess_script._hydra_subprocess_cmd = child_command


def end_process_group() -> None:
    """Undo what Lightning's launch leaves behind, so the next job of a multirun starts clean."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
    for key, value in _environ_before.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
