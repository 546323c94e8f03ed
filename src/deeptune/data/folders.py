"""Images in a folder of class folders: `data=images data.path=<folder>`.

<folder>/<class>/<image> (split stratified here), or <folder>/train/<class>/... with optional
val/ and test/ trees beside it (kept as given). Pillow decodes, converts to grayscale or RGB and
resizes; each channel is standardised with the training split's mean and std. A folder whose
decoded pixels fit in `in_memory_mb` is decoded once and kept as uint8 tensors; a bigger one is
decoded per sample, in the DataLoader's workers (`num_workers`).
"""

from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from deeptune.data.loaders import LoaderDataModule, class_indices, epoch_seed, fitted
from deeptune.errors import ConfigError

SPLITS = ("train", "val", "test")


def image_files(folder: Path) -> list[Path]:
    """Every file under `folder` that Pillow can open by its extension, sorted."""
    from PIL import Image

    known = {ext.lower() for ext in Image.registered_extensions()}
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in known)


def decode(path, size: tuple[int, int], channels: int) -> torch.Tensor:
    """One image file as uint8 (channels, height, width)."""
    from PIL import Image

    with Image.open(path) as image:
        return pixels(image, size, channels)


def pixels(image, size: tuple[int, int], channels: int) -> torch.Tensor:
    """A PIL image, grayscale or RGB, resized, as uint8 (channels, height, width)."""
    from PIL import Image

    image = image.convert("L" if channels == 1 else "RGB")
    image = image.resize((size[1], size[0]), Image.Resampling.BILINEAR)
    array = np.asarray(image, dtype=np.uint8).reshape(size[0], size[1], channels)
    return torch.from_numpy(array.copy()).permute(2, 0, 1)


class ImageSet(Dataset):
    """One split: uint8 images (a tensor, or files decoded on demand), standardised per channel;
    keys that carry an epoch, (epoch, index), get the training augmentation, seeded by
    (seed, epoch, index) so a worker, a restart and a resumed run draw the same."""

    def __init__(self, images, y, size, channels, scaler, augment, seed):
        self.images, self.y, self.size, self.channels = images, y, size, channels
        self.mean = torch.tensor(scaler["mean"]).view(-1, 1, 1) if scaler else None
        self.std = torch.tensor(scaler["std"]).view(-1, 1, 1) if scaler else None
        self.crop, self.flip = int(augment.get("crop") or 0), bool(augment.get("flip"))
        self.seed = seed

    def __len__(self):
        return len(self.y)

    def image(self, i: int) -> torch.Tensor:
        if isinstance(self.images, torch.Tensor):
            return self.images[i]
        return decode(self.images[i], self.size, self.channels)

    def __getitem__(self, key):
        epoch, i = key if isinstance(key, tuple) else (None, key)
        x = self.image(i).float() / 255
        if self.mean is not None:
            x = (x - self.mean) / self.std
        if epoch is not None and (self.crop or self.flip):
            x = self._augment(x, torch.Generator().manual_seed(epoch_seed(self.seed, epoch, i)))
        return x, self.y[i]

    def __getitems__(self, keys):
        samples = [self[k] for k in keys]
        return torch.stack([x for x, _ in samples]), torch.stack([y for _, y in samples])

    def _augment(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        if self.crop:  # pad with the mean colour (0 after standardising), cut a random window
            p = self.crop
            padded = torch.nn.functional.pad(x, (p, p, p, p))
            top, left = torch.randint(0, 2 * p + 1, (2,), generator=generator).tolist()
            x = padded[:, top : top + x.shape[1], left : left + x.shape[2]]
        if self.flip and torch.rand((), generator=generator) < 0.5:
            x = x.flip(-1)
        return x


class ImageFolderDataModule(LoaderDataModule):
    augments = True

    def __init__(
        self,
        path: str,
        image_size: int | list[int] = 32,
        channels: int = 3,
        standardize: bool = True,
        augment: dict | None = None,
        in_memory_mb: float = 512,
        **common,
    ):
        super().__init__(**common)
        self.path = path
        size = [image_size] * 2 if isinstance(image_size, int) else list(image_size)
        self.size = (int(size[0]), int(size[1]))
        self.channels, self.standardize = channels, standardize
        self.augment = dict(augment or {})
        self.in_memory_mb = in_memory_mb
        self.scaler: dict | None = None
        self.in_memory: bool | None = None

    @property
    def input_shape(self) -> tuple[int, ...]:
        return (self.channels, *self.size)

    def _read(self):
        root = Path(self.path).expanduser()
        if not root.is_dir():
            raise ConfigError("data.path", self.path, "no such folder")
        trees = {s: root / s for s in SPLITS if (root / s).is_dir()}
        if "train" not in trees:
            trees = {"train": root}
        class_dirs = sorted(d.name for d in trees["train"].iterdir() if d.is_dir())
        if len(class_dirs) < 2:
            found = f"{len(class_dirs)} class folders"
            raise ConfigError("data.path", self.path, f"{found}: it needs one folder per class")
        files, labels, given = [], [], {}
        for split, tree in trees.items():
            start = len(files)
            for name in sorted(d.name for d in tree.iterdir() if d.is_dir()):
                if name not in class_dirs:
                    raise ConfigError("data.path", str(tree / name), "a class train/ does not have")
                found = image_files(tree / name)
                if split == "train" and not found:
                    raise ConfigError("data.path", str(tree / name), "holds no image files")
                files += found
                labels += [name] * len(found)
            if split != "train":
                given[split] = np.arange(start, len(files))
        y, self.classes = class_indices(labels, class_dirs)
        self.files, self.y = files, torch.from_numpy(y)
        return y, given

    def _datasets(self, indices):
        decoded = len(self.files) * self.channels * self.size[0] * self.size[1]
        self.in_memory = decoded <= self.in_memory_mb * 2**20
        if self.in_memory:
            images = torch.stack([decode(f, self.size, self.channels) for f in self.files])
        else:
            images = self.files
        if self.standardize and self.scaler is None:
            train, shape = indices["train"], (self.size, self.channels)
            self.scaler = fitted(
                "images", self.files, train, shape, lambda: channel_stats(images, train, *shape)
            )
        self._images = images
        return self._build(indices)

    def _build(self, indices):
        def subset(idx):
            if isinstance(self._images, torch.Tensor):
                return self._images[torch.from_numpy(idx)]
            return [self._images[i] for i in idx]

        return {
            name: ImageSet(
                subset(idx),
                self.y[torch.from_numpy(idx)],
                self.size,
                self.channels,
                self.scaler,
                self.augment if name == "train" else {},
                self.seed,
            )
            for name, idx in indices.items()
        }

    # -- fitted state, for a checkpoint to predict on new images ---------------------------------

    def state_dict(self) -> dict:
        return {
            "image_size": list(self.size),
            "channels": self.channels,
            "scaler": self.scaler,
            "classes": list(self.classes),
        }

    def load_state_dict(self, state: dict) -> None:
        self.size, self.channels = tuple(state["image_size"]), state["channels"]
        self.scaler, self.classes = state["scaler"], list(state["classes"])
        if self.indices is not None:  # already set up: the datasets take the restored scaler
            self.datasets = self._build(self.indices)

    def predict_inputs(self, raw) -> torch.Tensor:
        """Image files, a folder of them (sorted, sub-folders included) or PIL images ->
        (n, channels, height, width), standardised as in training."""
        if isinstance(raw, (str, Path)):
            raw = image_files(Path(raw)) if Path(raw).is_dir() else [raw]
        size, channels = self.size, self.channels
        images = torch.stack(
            [pixels(r, size, channels) if hasattr(r, "convert") else decode(r, size, channels)
             for r in raw]
        )  # fmt: skip
        split = ImageSet(images, torch.zeros(len(images)), size, channels, self.scaler, {}, 0)
        return split.__getitems__(range(len(images)))[0]


def channel_stats(images, train: np.ndarray, size, channels) -> dict[str, list[float]]:
    """Per-channel mean and std of the training images' pixels in [0, 1] (float64 sums, a
    constant channel gets std 1), decoding lazily read files one at a time."""
    total = torch.zeros(channels, dtype=torch.float64)
    squares = torch.zeros(channels, dtype=torch.float64)
    chunk = 256
    for start in range(0, len(train), chunk):
        idx = train[start : start + chunk]
        if isinstance(images, torch.Tensor):
            batch = images[torch.from_numpy(idx)]
        else:
            batch = torch.stack([decode(images[i], size, channels) for i in idx])
        values = batch.double().div_(255).transpose(0, 1).reshape(channels, -1)
        total += values.sum(1)
        squares += values.square().sum(1)
    count = len(train) * size[0] * size[1]
    mean = total / count
    std = (squares / count - mean.square()).clamp_min(0).sqrt()
    std[std < 1e-6] = 1.0
    return {"mean": mean.tolist(), "std": std.tolist()}
