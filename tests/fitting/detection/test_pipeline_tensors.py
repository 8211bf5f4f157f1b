"""`FacePipeline.tensors` keeps large (tiled) photos in float32 so that their crops are float views:
the same candidates, located faces and landmarks, to the bit, as from the uint8 photo."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from affectsynth.fitting.detection.pipeline import FacePipeline, PipelineSettings
from affectsynth.images import load_image


def test_large_photo_in_float_gives_the_uint8_photos_faces_to_the_bit(dev_photos):
    settings = PipelineSettings()
    photo = next((im for im in map(load_image, sorted(dev_photos.glob("*.jpg"))) if max(im.shape[:2]) >= settings.tile_min_side),
                 None)
    if photo is None:
        pytest.skip("no dev photo is large enough to be tiled")
    pipe = FacePipeline(settings)
    small = photo[:400, :400].copy()
    as_float, kept_small = pipe.tensors([photo, small])
    assert as_float.dtype == torch.float32 and kept_small.dtype == torch.uint8
    as_uint8 = torch.from_numpy(photo.copy()).permute(2, 0, 1)
    assert torch.equal(as_float, as_uint8.to(torch.float32))
    results = []
    for tensor in (as_float, as_uint8):
        candidates = pipe.candidates([tensor])[0]
        picks = [(0, c) for c in candidates[:3]]
        located = pipe.locate([tensor], picks)
        meshed = pipe.mesh_located([tensor], [(0, c, f) for (_, c), f in zip(picks, located) if f is not None])
        results.append((candidates, [None if f is None else f.rect for f in located], meshed))
    (c_f, l_f, m_f), (c_u, l_u, m_u) = results
    assert c_f == c_u and len(c_f) > 0
    assert all((a is None and b is None) or torch.equal(a, b) for a, b in zip(l_f, l_u))
    assert len(m_f) == len(m_u) > 0
    for a, b in zip(m_f, m_u):
        assert (a is None) == (b is None)
        if a is not None:
            assert np.array_equal(a.points, b.points) and np.array_equal(a.depth, b.depth)
