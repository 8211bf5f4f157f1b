"""Datasets whose (image, label) samples go through `AffectAugment`, so that labels follow the new faces.

torchvision's ``ImageFolder(transform=...)`` hands its transform the image alone, so an
expression-changing transform there could never rewrite the label (`AffectAugment` refuses such
calls). `AffectAugmentedDataset` wraps any map-style dataset of ``(image, label)`` pairs (an
``ImageFolder`` included) and checks that the transform's labels use the dataset's own indices;
`AffectAugmentedImageFolder` reads the folders itself.

Layout as torchvision's ``ImageFolder``: ``root/<class>/**/<image>``. Class indices follow the
transform's label preset when it has classes (folder names are matched to categories through
`affectsynth.labels.CATEGORY_ALIASES`, so Kaggle's FER2013 folders ``angry, disgust, fear,
happy, neutral, sad, surprise`` get FER2013's indices 0..6), else sorted folder order.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable

from torch.utils.data import Dataset

from affectsynth.images import IMAGE_EXTENSIONS, load_image
from affectsynth.labels import LabelPreset, get_preset
from affectsynth.naming import find_images
from affectsynth.transform import AffectAugment

__all__ = ["AffectAugmentedDataset", "AffectAugmentedImageFolder", "load_pil"]


def load_pil(path: str | os.PathLike) -> Any:
    """Robust loader (`load_image`: EXIF, modes, 16-bit, bombs) returning an RGB PIL image."""
    from PIL import Image

    return Image.fromarray(load_image(path), "RGB")


class AffectAugmentedImageFolder(Dataset):
    """Class-subfolder image dataset returning ``(image, label)`` after `AffectAugment`.

    Args:
        root: dataset folder with one subfolder per class.
        transform: the `AffectAugment` (or None: plain dataset).
        post_transform: applied to the image after ``transform`` (e.g. ``ToTensor``), or None.
        loader: path -> image; default :func:`load_pil` (RGB PIL image).
        label_preset: class order; default ``"transform"``: the transform's preset (``"fer2013"``
            without a transform).
            "va" or None: classes in sorted folder order, as ``ImageFolder``.

    Attributes:
        classes: folder names, in index order where the preset defines it.
        class_to_idx: folder name -> class index.
        samples: list of (path, class index).

    Raises:
        FileNotFoundError: ``root`` has no class folder or no image.
        ValueError: a folder name the preset cannot map (e.g. "contempt" with "fer2013").

    Note:
        Call :meth:`set_epoch` before each epoch (before the ``for`` loop over the DataLoader):
        the epoch is shared memory, so ``persistent_workers=True`` workers see it too.
    """

    def __init__(self, root: str | os.PathLike, transform: AffectAugment | None = None, *,
                 post_transform: Callable[[Any], Any] | None = None,
                 loader: Callable[[str], Any] = load_pil,
                 label_preset: str | LabelPreset | None = "transform") -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise FileNotFoundError(f"AffectAugmentedImageFolder: {root} is not a folder")
        self.transform = transform
        self.post_transform = post_transform
        self.loader = loader
        if isinstance(label_preset, str) and label_preset == "transform":
            preset = transform.preset if transform is not None else get_preset("fer2013")
        else:
            preset = None if label_preset is None else get_preset(label_preset)
        self.preset = preset
        folders = sorted(d.name for d in self.root.iterdir() if d.is_dir() and not d.name.startswith("."))
        if not folders:
            raise FileNotFoundError(f"AffectAugmentedImageFolder: no class folders under {root}")
        if preset is not None and preset.kind == "class":
            self.class_to_idx = preset.class_to_idx(folders)
            self.classes = sorted(folders, key=lambda f: self.class_to_idx[f])
        else:
            self.class_to_idx = {f: i for i, f in enumerate(folders)}
            self.classes = folders
        self.samples: list[tuple[str, int]] = [
            (str(p), self.class_to_idx[f]) for f in folders for p in find_images(self.root / f)]
        if not self.samples:
            raise FileNotFoundError(f"AffectAugmentedImageFolder: no images ({', '.join(IMAGE_EXTENSIONS)}) "
                                    f"under {root}")
        self.targets = [c for _, c in self.samples]

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[Any, Any]:
        path, label = self.samples[index]
        image = self.loader(path)
        sample: Any = (image, label)
        if self.transform is not None:
            sample = self.transform(sample)
        image, label = sample
        if self.post_transform is not None:
            image = self.post_transform(image)
        return image, label

    def set_epoch(self, epoch: int) -> None:
        """Forward the epoch to the transform (see `AffectAugment.set_epoch`)."""
        if self.transform is not None:
            self.transform.set_epoch(epoch)


class AffectAugmentedDataset(Dataset):
    """Any map-style dataset of ``(image, label)`` pairs, with `AffectAugment` applied to each pair.

    Use it instead of ``ImageFolder(root, transform=aug)`` (which cannot rewrite labels)::

        folder = torchvision.datasets.ImageFolder(root)
        aug = AffectAugment(("happiness", "surprise"), label_preset=LabelPreset.from_class_to_idx(folder.class_to_idx))
        ds = AffectAugmentedDataset(folder, aug, post_transform=v2.Compose([v2.ToImage(), ...]))

    Args:
        dataset: returns ``(image, label)`` per index; a ``class_to_idx`` attribute (as
            ``ImageFolder`` has) is checked against the transform's label preset.
        transform: the `AffectAugment`.
        post_transform: applied to the image after ``transform`` (e.g. ``ToTensor``), or None.

    Raises:
        ValueError: the transform's class preset gives some class another index than the
            dataset's ``class_to_idx`` (two index spaces); the message says how to build the
            preset from the dataset.
    """

    def __init__(self, dataset: Any, transform: AffectAugment, *,
                 post_transform: Callable[[Any], Any] | None = None) -> None:
        self.dataset = dataset
        self.transform = transform
        self.post_transform = post_transform
        mapping = getattr(dataset, "class_to_idx", None)
        preset = transform.preset
        if isinstance(mapping, dict) and preset is not None and preset.kind == "class":
            _check_same_indices(mapping, preset)

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> tuple[Any, Any]:
        image, label = self.transform(tuple(self.dataset[index]))
        if self.post_transform is not None:
            image = self.post_transform(image)
        return image, label

    def set_epoch(self, epoch: int) -> None:
        """Forward the epoch to the transform (see `AffectAugment.set_epoch`)."""
        self.transform.set_epoch(epoch)


def _check_same_indices(class_to_idx: dict, preset: LabelPreset) -> None:
    wrong = preset.disagreements(class_to_idx)
    if wrong:
        raise ValueError(f"AffectAugmentedDataset: the transform's label preset {preset.name!r} and the dataset's "
                         f"class_to_idx disagree ({'; '.join(wrong)}); build the preset from the dataset: "
                         "AffectAugment(..., label_preset=LabelPreset.from_class_to_idx(dataset.class_to_idx))")
