"""Hugging Face ``datasets``: `AffectAugment` as a batched function for ``ds.map`` and ``ds.with_transform``.

The label stays in the dataset's own index space: build the transform's preset from the
dataset's ``ClassLabel`` (`affectsynth.labels.LabelPreset.from_class_label`); a preset in
another order is refused. With a "va" preset, VA columns are added, and a re-rendered row's class
label becomes -1 (``ClassLabel``'s "no label"): its old class no longer describes the face.
``datasets`` is not a dependency of affectsynth: only the caller's dataset uses it.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

from affectsynth.labels import LabelPreset
from affectsynth.transform import AffectAugment

__all__ = ["INSTALL_HINT", "hf_transform"]

#: The install command for ``datasets`` alongside this project's ``numpy<2`` (pyarrow 20+ needs NumPy 2).
INSTALL_HINT = "pip install 'affectsynth[integrations]' (or: pip install 'datasets<4' 'pyarrow<20')"


def hf_transform(aug: AffectAugment, features: Mapping[str, Any] | None = None, *, image_column: str = "image",
                 label_column: str | None = "label", va_columns: tuple[str, str] = ("valence", "arousal"),
                 ) -> Callable[[dict[str, list]], dict[str, list]]:
    """A batched function applying ``aug`` row by row: ``ds.map(f, batched=True)`` or ``ds.with_transform(f)``.

    Args:
        aug: the transform; its label preset decides what is written (see the module docstring).
        features: the dataset's ``ds.features``; when the label column is a ``ClassLabel``, the
            transform's class preset must give every class the dataset's own index.
        image_column: the column of images (PIL images, as ``datasets.Image`` decodes them, or arrays).
        label_column: the class-label column, or None when the dataset has none.
        va_columns: names of the (valence, arousal) float columns written with a "va" preset
            (None where a row was not re-rendered).

    Returns:
        ``f(batch) -> batch``: a dict of equal-length lists in, the same dict with the image column
        (and label / VA columns) replaced out.

    Raises:
        ValueError: the transform's class preset and the dataset's ``ClassLabel`` disagree, or a
            class preset without a ``label_column``.

    Example:
        >>> from affectsynth.labels import LabelPreset
        >>> preset = LabelPreset.from_class_to_idx({"happy": 0, "sad": 1})
        >>> f = hf_transform(AffectAugment(("happiness",), p=0.0, label_preset=preset))
        >>> import numpy as np
        >>> f({"image": [np.zeros((8, 8, 3), np.uint8)], "label": [1]})["label"]
        [1]
    """
    preset = aug.preset
    if preset is not None and preset.kind == "class":
        if label_column is None:
            raise ValueError("hf_transform: the transform rewrites class labels; name the label_column "
                             "(or build AffectAugment(..., rewrite_labels=False))")
        feature = None if features is None else features.get(label_column)
        names = getattr(feature, "names", None)
        if names is not None:
            _check_class_label(names, preset, label_column)

    def transform(batch: dict[str, list]) -> dict[str, list]:
        images = batch[image_column]
        labels = batch.get(label_column) if label_column is not None else None
        if preset is not None and preset.kind == "class" and labels is None:
            raise KeyError(f"hf_transform: the batch has no label column {label_column!r} (columns: {list(batch)})")
        out = dict(batch)
        new_images, new_labels, va = [], [], ([], [])
        for i, image in enumerate(images):
            label = labels[i] if labels is not None else None
            new_image, new_label = aug((image, label))
            done = aug.last_labels
            new_images.append(new_image)
            if preset is not None and preset.kind == "va":
                va[0].append(None if done is None else done.target.valence)
                va[1].append(None if done is None else done.target.arousal)
                new_labels.append(label if done is None or label is None else -1)
            else:
                new_labels.append(new_label)
        out[image_column] = new_images
        if labels is not None:
            out[label_column] = new_labels
        if preset is not None and preset.kind == "va":
            out[va_columns[0]], out[va_columns[1]] = va
        return out

    return transform


def _check_class_label(names: list[str], preset: LabelPreset, column: str) -> None:
    wrong = preset.disagreements({n: i for i, n in enumerate(names)})
    if wrong:
        raise ValueError(f"hf_transform: the transform's label preset {preset.name!r} and the dataset's "
                         f"ClassLabel {column!r} disagree ({'; '.join(wrong)}); build the preset from the dataset: "
                         f"AffectAugment(..., label_preset=LabelPreset.from_class_label(ds.features[{column!r}]))")
