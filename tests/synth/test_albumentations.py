"""albumentations: AffectAugment inside A.Compose (keyword call, dict back, keypoints kept in their format)."""

from __future__ import annotations

import numpy as np
import pytest

from affectsynth.albu import to_albumentations
from affectsynth.transform import AffectAugment, MissingLabelError

A = pytest.importorskip("albumentations", reason="needs albumentations: pip install 'affectsynth[integrations]'")


def test_inside_albumentations_compose():
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    aug = AffectAugment(("happiness",), p=0.0)
    pipe = A.Compose([to_albumentations(aug), A.HorizontalFlip(p=1.0)], keypoint_params=A.KeypointParams(format="xy"))
    out = pipe(image=img, label=3, keypoints=np.array([[4.0, 5.0]]))
    np.testing.assert_array_equal(out["image"], img[:, ::-1])
    assert out["label"] == 3 and np.asarray(out["keypoints"]).tolist() in ([[27.0, 5.0]], [[28.0, 5.0]])  # flipped
    assert aug.stats["passed"] == 1 and aug.last_params.apply is False
    with pytest.raises(MissingLabelError):
        pipe(image=img)
    with pytest.raises(TypeError):
        to_albumentations("not a transform")
