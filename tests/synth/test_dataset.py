from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from affectsynth.dataset import AffectAugmentedDataset, AffectAugmentedImageFolder
from affectsynth.images import save_png
from affectsynth.labels import LabelPreset, UnsupportedTargetError
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


class _Folder(torch.utils.data.Dataset):
    """A map-style dataset of (PIL image, class index) with ImageFolder's class_to_idx (sorted folder names)."""

    def __init__(self, root, photo):
        self.class_to_idx = {"happy": 0, "neutral": 1, "sad": 2}
        self.photo = Image.fromarray(photo)

    def __len__(self):
        return 3

    def __getitem__(self, i):
        return self.photo, i


def test_wrapped_dataset_refuses_two_index_spaces(tmp_path, photo):
    """A FER2013 preset over ImageFolder's {0, 1, 2} would write 3, 4, 6: refuse, and say how to build the preset."""
    base = _Folder(tmp_path, photo)
    with pytest.raises(ValueError, match=r"from_class_to_idx\(dataset.class_to_idx\)") as e:
        AffectAugmentedDataset(base, AffectAugment(("happiness", "sadness"), label_preset="fer2013"))
    assert "'happy': dataset 0, preset 3" in str(e.value)
    aug = AffectAugment(("happiness", "sadness"), p=0.0, label_preset=LabelPreset.from_class_to_idx(base.class_to_idx))
    ds = AffectAugmentedDataset(base, aug, post_transform=np.asarray)
    img, label = ds[2]
    assert isinstance(img, np.ndarray) and img.shape == photo.shape and label == 2 and len(ds) == 3
    ds.set_epoch(2)
    assert aug.epoch == 2
