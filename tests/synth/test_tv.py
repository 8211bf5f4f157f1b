"""torchvision v2: AffectAugment in v2.Compose, tv_tensors kept (Image, KeyPoints moved, BoundingBoxes passed)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from affectsynth.transform import AffectAugment
from affectsynth.tv import INSTALL_HINT

torchvision = pytest.importorskip("torchvision", reason=f"needs torchvision: {INSTALL_HINT}")
from torchvision import tv_tensors  # noqa: E402
from torchvision.transforms import v2  # noqa: E402


def _face() -> np.ndarray:
    import skimage.data

    return np.array(Image.fromarray(skimage.data.astronaut()).resize((256, 256)))


def test_v2_compose_tuple_and_dict_forms_not_drawn():
    img = tv_tensors.Image(torch.from_numpy(_face()).permute(2, 0, 1))
    aug = AffectAugment(("happiness",), p=0.0)
    pipe = v2.Compose([aug, v2.ToDtype(torch.float32, scale=True)])
    out, label = pipe(img, 6)
    assert isinstance(out, tv_tensors.Image) and out.dtype == torch.float32 and label == 6
    kp = tv_tensors.KeyPoints(torch.tensor([[10.0, 20.0]]), canvas_size=(256, 256))
    boxes = tv_tensors.BoundingBoxes(torch.tensor([[1.0, 2.0, 30.0, 40.0]]), format="XYXY", canvas_size=(256, 256))
    d = pipe({"image": img, "label": 6, "points": kp, "boxes": boxes})
    assert isinstance(d["image"], tv_tensors.Image) and d["label"] == 6
    assert isinstance(d["points"], tv_tensors.KeyPoints) and isinstance(d["boxes"], tv_tensors.BoundingBoxes)


@pytest.mark.slow
def test_v2_real_face_keeps_types_and_moves_keypoints():
    face = _face()
    aug = AffectAugment(("surprise",), p=1.0, intensity=1.0)
    src = aug.face_landmarks(face)
    img = tv_tensors.Image(torch.from_numpy(face).permute(2, 0, 1))
    kp = tv_tensors.KeyPoints(torch.from_numpy(src).float(), canvas_size=(256, 256))
    boxes = tv_tensors.BoundingBoxes(torch.tensor([[60.0, 30.0, 160.0, 150.0]]), format="XYXY", canvas_size=(256, 256))
    out = v2.Compose([aug])({"image": img, "label": 6, "keypoints": kp, "boxes": boxes})
    assert isinstance(out["image"], tv_tensors.Image) and out["label"] == 5 and aug.stats["applied"] == 1
    assert (out["image"].float() - img.float()).abs().max() > 20
    assert isinstance(out["keypoints"], tv_tensors.KeyPoints) and out["keypoints"].canvas_size == (256, 256)
    np.testing.assert_allclose(out["keypoints"].numpy(), aug.last_labels.landmarks, atol=1e-3)
    assert out["boxes"] is boxes
