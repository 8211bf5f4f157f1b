"""Hugging Face datasets: hf_transform in ds.map(batched=True) and ds.with_transform on small in-memory datasets."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from affectsynth.hf import INSTALL_HINT, hf_transform
from affectsynth.labels import LabelPreset
from affectsynth.transform import AffectAugment

datasets = pytest.importorskip("datasets", reason=f"needs Hugging Face datasets: {INSTALL_HINT}")


def _ds(images, labels, names=("happy", "neutral", "surprise")):
    features = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=list(names))})
    return datasets.Dataset.from_dict({"image": [Image.fromarray(i) for i in images], "label": labels},
                                      features=features)


def _noise(n):
    rng = np.random.default_rng(0)
    return [rng.integers(0, 256, (16, 16, 3), dtype=np.uint8) for _ in range(n)]


def test_preset_must_match_the_class_label():
    ds = _ds(_noise(2), [0, 1])
    with pytest.raises(ValueError, match=r"from_class_label\(ds.features\['label'\]\)"):
        hf_transform(AffectAugment(("happiness",), label_preset="fer2013"), ds.features)
    with pytest.raises(ValueError, match="label_column"):
        hf_transform(AffectAugment(("happiness",)), label_column=None)


def test_map_and_with_transform_keep_rows_not_drawn():
    ds = _ds(_noise(3), [0, 1, 2])
    aug = AffectAugment(("happiness", "surprise"), p=0.0,
                        label_preset=LabelPreset.from_class_label(ds.features["label"]))
    f = hf_transform(aug, ds.features)
    mapped = ds.map(f, batched=True, batch_size=2)
    assert mapped["label"] == [0, 1, 2] and mapped.features["label"] == ds.features["label"]
    assert [np.asarray(i).tolist() for i in mapped["image"]] == [i.tolist() for i in _noise(3)]
    lazy = ds.with_transform(f)
    assert lazy[1]["label"] == 1 and isinstance(lazy[1]["image"], Image.Image) and aug.stats["passed"] >= 4


@pytest.mark.slow
def test_map_rewrites_class_label_and_adds_va_columns():
    import skimage.data

    face = np.asarray(Image.fromarray(skimage.data.astronaut()).resize((256, 256)))
    ds = _ds([face, _noise(1)[0]], [1, 1])
    aug = AffectAugment(("surprise",), p=1.0, label_preset=LabelPreset.from_class_label(ds.features["label"]))
    out = ds.map(hf_transform(aug, ds.features), batched=True)
    assert out["label"] == [2, 1]  # the face became surprise (the dataset's index 2); noise has no face: kept
    assert np.abs(np.asarray(out[0]["image"], np.int16) - face).max() > 20 and aug.stats["unfitted"] == 1
    va = AffectAugment(("surprise",), p=1.0, label_preset="va")
    out = ds.select([0]).map(hf_transform(va, ds.features), batched=True)
    assert out["label"] == [-1]  # a class no longer known: ClassLabel's "no label"
    assert out["valence"][0] is not None and out["arousal"][0] > 0.3
