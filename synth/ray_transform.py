"""`AugmentBatches`: the `AffectAugment` transform as a Ray Data ``map_batches`` callable class.

Each Ray actor unpickles the transform once (it pickles without its Synthesizer and builds one on
first use, as in a DataLoader worker) and keeps its fit cache across batches. Images and labels
are rewritten together, item by item, with the same draws as anywhere else (an item's draw
depends only on seed, image content and epoch)::

    ds = ray.data.from_items([{"image": img, "label": 6}, ...])
    ds = ds.map_batches(AugmentBatches, fn_constructor_kwargs={"aug": aug, "epoch": 0},
                        batch_size=8, batch_format="numpy", compute=ray.data.ActorPoolStrategy(size=2))

Note:
    The epoch of `AffectAugment.set_epoch` lives in this process's shared memory, which other
    nodes do not see: pass ``epoch`` for each epoch's dataset instead.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["AugmentBatches"]


def _column(values: list) -> np.ndarray:
    """One stacked array when every item has the same shape and dtype, else an object array."""
    arrays = [np.asarray(v) for v in values]
    if arrays and all(a.shape == arrays[0].shape and a.dtype == arrays[0].dtype for a in arrays):
        return np.stack(arrays)
    out = np.empty(len(arrays), dtype=object)
    for i, a in enumerate(arrays):
        out[i] = a
    return out


class AugmentBatches:
    """Apply an `AffectAugment` to every row of a numpy batch: ``{image: [B, H, W, 3] uint8, label: [B]}``.

    Args:
        aug: the transform (``affectsynth.transform.AffectAugment``); its label preset decides
            the label column's meaning, as in a DataLoader.
        epoch: the epoch whose draws to use (see the module note); ``None`` keeps the transform's.
        image_column: the column of images (``[B, H, W, 3]`` uint8, or an object array of
            ``[H, W, 3]`` images of different sizes).
        label_column: the column of labels (rewritten with the image).

    Returns (from ``__call__``):
        The batch with both columns replaced; other columns pass through unchanged.
    """

    def __init__(self, aug: Any, *, epoch: int | None = None, image_column: str = "image",
                 label_column: str = "label") -> None:
        self.aug = aug
        if epoch is not None:
            aug.set_epoch(epoch)
        self.image_column = image_column
        self.label_column = label_column

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        for col in (self.image_column, self.label_column):
            if col not in batch:
                raise KeyError(f"AugmentBatches: the batch has no column {col!r}; columns: {sorted(batch)}")
        images, labels = [], []
        for image, label in zip(batch[self.image_column], batch[self.label_column]):
            label = label.item() if isinstance(label, np.generic) else label
            new_image, new_label = self.aug((np.asarray(image), label))
            images.append(new_image)
            labels.append(new_label)
        out = dict(batch)
        out[self.image_column] = _column(images)
        out[self.label_column] = _column(labels)
        return out
