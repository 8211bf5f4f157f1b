"""`ConvGraph`'s fused branches against the converted layers run one by one, on real faces.

The face mesh's lips, eye and iris branches run as grouped layers (`ConvGraph._fuse_branches`);
the landmarks of the dev photos' faces must stay within 0.01 px of the unfused graph's, and the
detectors (no parallel branches) must be left as they are.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from affectsynth.fitting import TorchFaceDetector
from affectsynth.fitting.detection.blazeface import DATA_DIR
from affectsynth.fitting.detection.graph import load_graph
from affectsynth.images import load_image

MESH = DATA_DIR / "mediapipe_face_landmark_with_attention.npz"


def test_fusion_groups_the_mesh_branches_only():
    fused, plain = load_graph(MESH), load_graph(MESH, fuse_branches=False)
    kinds = [spec["kind"] for spec in fused.layers if spec["op"] == "fused"]
    assert len(fused.layers) < 0.6 * len(plain.layers) and {"conv", "prelu", "add"} <= set(kinds)
    for name in ("mediapipe_face_detection_full_range", "mediapipe_face_detection_short_range"):
        assert not [s for s in load_graph(DATA_DIR / f"{name}.npz").layers if s["op"] == "fused"], name


@pytest.mark.slow
def test_fused_mesh_gives_the_unfused_landmarks(dev_photos):
    detector = TorchFaceDetector()
    pipeline = detector._ensure()
    photos = [load_image(p) for p in sorted(dev_photos.glob("*.jpg"))]
    fused = detector.detect_batch(photos)
    pipeline.mesh.net = load_graph(MESH, fuse_branches=False)
    try:
        plain = detector.detect_batch(photos)
    finally:
        detector.close()
    assert sum(map(len, plain)) > 40
    for a, b in zip(fused, plain):
        assert len(a) == len(b)
        for fa, fb in zip(a, b):
            np.testing.assert_allclose(fa.points, fb.points, atol=0.01)
            np.testing.assert_allclose(fa.depth, fb.depth, atol=0.01)


def test_fused_graph_keeps_the_outputs_on_a_batch():
    fused, plain = load_graph(MESH), load_graph(MESH, fuse_branches=False)
    x = torch.rand(3, 3, 192, 192, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        for a, b in zip(fused(x), plain(x)):
            assert a.shape == b.shape
            torch.testing.assert_close(a, b, atol=1e-3, rtol=1e-4)
