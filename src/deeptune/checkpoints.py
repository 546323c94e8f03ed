"""Checkpoint files written next to their target, then renamed over it.

Lightning's own writer stages each file in the system temp folder (fsspec's transaction): a kill
during a write left a partial `tmp*` file there, and where the temp folder is another file
system the final move is a copy that can itself be cut off. Here the partial file is
`.<name>.tmp` in the checkpoints folder: the next write of that checkpoint replaces it, the next
save of any removes it, and it does not end in `.ckpt`, so ModelCheckpoint never takes it for a
checkpoint.
"""

import os
from pathlib import Path

from lightning.pytorch.plugins.io import TorchCheckpointIO

PARTIAL = ".tmp"  # the suffix of a file being written


class LocalCheckpointIO(TorchCheckpointIO):
    def save_checkpoint(self, checkpoint: dict, path, storage_options=None) -> None:
        if storage_options is not None or "://" in str(path):  # remote: Lightning's own writer
            return super().save_checkpoint(checkpoint, path, storage_options)
        import torch

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{path.name}{PARTIAL}")
        with open(partial, "wb") as f:  # no fsync, as Lightning: a killed process loses nothing
            torch.save(checkpoint, f)  # written, only a crash of the machine would
        os.replace(partial, path)
        for stale in path.parent.glob(f".*.ckpt{PARTIAL}"):  # what a killed write left
            stale.unlink(missing_ok=True)
