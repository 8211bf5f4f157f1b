"""`AffectAugmentedImageFolder`: an ImageFolder-style dataset whose samples go through `AffectAugment`.

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

__all__ = ["AffectAugmentedImageFolder", "load_pil"]


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
        Call :meth:`set_epoch` before each epoch. With ``persistent_workers=True`` the workers
        keep the epoch they started with; use non-persistent workers (the default) for a new
        draw per epoch.
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
