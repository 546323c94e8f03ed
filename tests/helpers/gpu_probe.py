"""A Hydra app whose job only records the GPUs it was given: `python gpu_probe.py -m
hydra/launcher=joblib ...` exercises deeptune's launcher without the cost of training."""

import json
import os
import time
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig


@hydra.main(version_base="1.3", config_path=None, config_name=None)
def main(cfg) -> None:
    hydra = HydraConfig.get()
    out = Path(hydra.runtime.output_dir)
    seen = {"CUDA_VISIBLE_DEVICES": os.environ.get("CUDA_VISIBLE_DEVICES"), "pid": os.getpid()}
    (out / "probe.json").write_text(json.dumps(seen))
    # The first job waits for the second, which then runs in the other worker: both are used.
    deadline = time.monotonic() + 60
    while len(list(Path(hydra.sweep.dir).glob("*/probe.json"))) < 2:
        if time.monotonic() > deadline:
            raise TimeoutError("no second job started: the launcher ran one job at a time")
        time.sleep(0.05)


if __name__ == "__main__":
    main()
