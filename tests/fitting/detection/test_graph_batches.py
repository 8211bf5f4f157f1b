"""`ConvGraph` runs CPU batches larger than `CPU_BATCH` in chunks: the same outputs as one call."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from affectsynth.fitting.detection.blazeface import DATA_DIR
from affectsynth.fitting.detection.graph import CPU_BATCH, load_graph
from affectsynth.images import load_image


@pytest.mark.parametrize("name, size", [("mediapipe_face_landmark_with_attention", 192),
                                        ("mediapipe_face_detection_short_range", 128)])
def test_chunked_batch_gives_the_outputs_of_one_call(dev_photos, name, size):
    photos = [load_image(p) for p in sorted(dev_photos.glob("*.jpg"))][: 2 * CPU_BATCH + 1]
    batch = torch.cat([F.interpolate(torch.from_numpy(np.array(im, copy=True)).permute(2, 0, 1)[None].float() / 255.0,
                                     size=(size, size), mode="bilinear", align_corners=False) for im in photos])
    net = load_graph(DATA_DIR / f"{name}.npz")
    with torch.no_grad():
        chunked, whole = net(batch), net._run(batch)
    assert len(batch) > CPU_BATCH and len(chunked) == len(whole)
    for a, b in zip(chunked, whole):
        assert a.shape == b.shape and a.shape[0] == len(batch)
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-5)
