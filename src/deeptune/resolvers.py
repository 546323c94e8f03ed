"""OmegaConf resolvers: the watched metric, and the SLURM launcher presets' requests.

`${monitored:${optimized_metric}}` is the metric checkpoints, early stopping and pruning watch:
optimized_metric itself, or its first entry when it lists several objectives (a multi-objective
sweep). deeptune.config imports this module, so every config it checks can resolve it.

For configs/hydra/launcher/slurm*.yaml: Lightning on SLURM starts no processes itself: it takes
one SLURM task per device and raises unless `--ntasks-per-node` equals `trainer.devices` and
`--nodes` equals `trainer.num_nodes`. These resolvers derive the request from the trainer config,
so users set the devices once.
Importing this module registers them.
"""

from collections.abc import Sequence

from omegaconf import OmegaConf

from deeptune.tasks import monitored

GPU_ACCELERATORS = ("gpu", "cuda")


def devices_per_node(devices) -> int:
    """SLURM tasks per node for `trainer.devices`: an int, a list of device ids, or "0,1".

    "auto" and -1 ("all") become 1: the job then sees one device, and Lightning's "all" is one.
    """
    if isinstance(devices, Sequence) and not isinstance(devices, str):
        return len(devices)
    if isinstance(devices, str):
        text = devices.strip()
        if "," in text:
            return len([d for d in text.split(",") if d.strip()])
        if not text.lstrip("-").isdigit():
            return 1  # "auto"
        devices = int(text)
    return devices if devices > 0 else 1


def gpus_per_node(accelerator, devices) -> int | None:
    """GPUs to request per node: one per device with `accelerator=gpu`, else None, which leaves
    --gpus-per-node out of the sbatch script.

    `accelerator=auto` asks for none: a CPU partition would refuse a GPU request, so a run that
    wants GPUs says so with `trainer=gpu` or `trainer.accelerator=gpu`.
    """
    return devices_per_node(devices) if str(accelerator) in GPU_ACCELERATORS else None


for _name, _fn in (
    ("devices_per_node", devices_per_node),
    ("gpus_per_node", gpus_per_node),
    ("monitored", monitored),
):
    if not OmegaConf.has_resolver(_name):
        OmegaConf.register_new_resolver(_name, _fn)
