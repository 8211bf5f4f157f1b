from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from affectsynth.dataset import AffectAugmentedImageFolder
from affectsynth.images import save_png
from affectsynth.labels import UnsupportedTargetError
from affectsynth.transform import AffectAugment


@pytest.fixture()
def fer_root(tmp_path, photo):
    for cls in ("angry", "disgust", "fear", "happy", "neutral", "sad", "surprise"):  # Kaggle FER2013 folders
        save_png(tmp_path / cls / "0.png", photo)
    save_png(tmp_path / "happy" / "deep" / "1.png", photo[:64])
    (tmp_path / "happy" / "notes.txt").write_text("x")
    return tmp_path


def test_fer_folders_get_fer2013_indices(fer_root):
    ds = AffectAugmentedImageFolder(fer_root, AffectAugment(("happiness",), p=0.0))
    assert ds.classes == ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]
    assert ds.class_to_idx["neutral"] == 6 and len(ds) == 8
    img, label = ds[[i for i, (p, c) in enumerate(ds.samples) if p.endswith("1.png")][0]]
    assert isinstance(img, Image.Image) and img.size == (128, 64) and label == 3


def test_no_preset_is_sorted_order_and_post_transform(fer_root):
    ds = AffectAugmentedImageFolder(fer_root, None, label_preset=None, post_transform=np.asarray)
    assert ds.classes[0] == "angry" and ds.class_to_idx["neutral"] == 4
    img, _ = ds[0]
    assert isinstance(img, np.ndarray) and img.dtype == np.uint8


def test_errors(tmp_path, photo):
    with pytest.raises(FileNotFoundError):
        AffectAugmentedImageFolder(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no class folders"):
        AffectAugmentedImageFolder(tmp_path / "empty")
    save_png(tmp_path / "c" / "contempt" / "0.png", photo)
    with pytest.raises(UnsupportedTargetError, match="contempt"):
        AffectAugmentedImageFolder(tmp_path / "c", label_preset="fer2013")
    assert AffectAugmentedImageFolder(tmp_path / "c", label_preset="affectnet").class_to_idx == {"contempt": 7}


def test_set_epoch_reaches_transform(fer_root):
    aug = AffectAugment(("happiness",), p=0.0)
    AffectAugmentedImageFolder(fer_root, aug).set_epoch(3)
    assert aug.epoch == 3
