"""AffectAugment on a real face: keypoints move with it, batches, labels carry the frozen shapes."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from affectsynth.transform import AffectAugment


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    import skimage.data

    return np.asarray(Image.fromarray(skimage.data.astronaut()).resize((256, 256)))


@pytest.fixture(scope="module")
def surprise(astronaut):
    """One synthesised surprise with the face's own 468 landmarks given as keypoints (dict / albumentations call)."""
    aug = AffectAugment(("surprise",), p=1.0, seed=0, intensity=1.0)
    src = aug.face_landmarks(astronaut)
    extra = np.array([[5.0, 5.0], [128.0, 250.0]])  # far from the face: must not move
    out = aug(image=astronaut, label=6, keypoints=np.concatenate([src, extra]))
    return aug, src, out


@pytest.mark.slow
def test_keypoints_move_with_the_face(surprise):
    aug, src, out = surprise
    assert set(out) == {"image", "label", "keypoints"} and out["label"] == 5 and aug.stats["applied"] == 1
    moved = out["keypoints"]
    np.testing.assert_allclose(moved[:468], aug.last_labels.landmarks, atol=1e-6)
    jaw = np.abs(moved[:468, 1] - src[:, 1]).max()
    assert jaw > 2.0  # surprise drops the jaw: those points moved
    np.testing.assert_array_equal(moved[468:], [[5.0, 5.0], [128.0, 250.0]])


@pytest.mark.slow
def test_labels_carry_final_weights_and_frozen_shapes(surprise):
    aug, _, _ = surprise
    labels = aug.last_labels
    assert {"jawForward", "jawLeft", "mouthPucker", "mouthShrugUpper"} <= set(labels.frozen)
    assert not {"eyeBlink_L", "eyeWide_R", "jawOpen", "mouthLeft", "mouthRight"} & set(labels.frozen)  # contempt shifts the mouth
    assert labels.weights["jawOpen"] > 0.2 and labels.to_dict()["frozen"] == list(labels.frozen)


@pytest.mark.slow
def test_batch_tensor_is_augmented_per_item(astronaut):
    """A collated [B, C, H, W] float batch: each item drawn on its own, labels [B] rewritten, layout kept."""
    item = torch.from_numpy(astronaut.copy()).permute(2, 0, 1).float() / 255
    batch = torch.stack([item, item.flip(-1), item])
    aug = AffectAugment(("happiness", "surprise"), p=1.0, seed=1)
    img, lab = aug((batch, torch.tensor([6, 6, 6])))
    assert img.shape == batch.shape and img.dtype == batch.dtype and lab.shape == (3,)
    expected = [3 if p.target.name == "happiness" else 5 for p in aug.last_params]
    assert lab.tolist() == expected and aug.stats["applied"] == 3 and aug.stats["fits"] == 2
    for b in range(3):
        assert (img[b] - batch[b]).abs().max() > 0.05
    replay, _ = aug.apply((batch, torch.tensor([6, 6, 6])), aug.last_params)
    torch.testing.assert_close(replay, img)
