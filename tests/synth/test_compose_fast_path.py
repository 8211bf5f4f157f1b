"""The compiled CPU composite (`render.composite`'s fast path) against its torch path, on real renders of the astronaut."""

from __future__ import annotations

import importlib

import numpy as np
import pytest
import torch

from affectsynth import compose
from affectsynth.blendshapes import Expression
from affectsynth.render.composite import CompositeSettings
from affectsynth.synthesizer import Synthesizer

composite_module = importlib.import_module("affectsynth.render.composite")


@pytest.fixture(scope="module")
def composite_calls() -> list[tuple[tuple, dict]]:
    """The arguments of every `composite` call of three targets on the astronaut cropped to 256 px."""
    import skimage.data

    synth = Synthesizer()
    image = np.asarray(skimage.data.astronaut())
    crop, fit = synth.crop_to_face(image, synth.fit(image)[0], 256)
    calls: list[tuple[tuple, dict]] = []
    original = compose.composite

    def recording(*a, **k):
        calls.append((a, k))
        return original(*a, **k)

    compose.composite = recording
    try:
        for name in ("happiness", "surprise", "anger"):
            synth.synthesize(crop, Expression(name, 1.0), fit=fit)
    finally:
        compose.composite = original
    return calls


@pytest.mark.parametrize("warp_mode", ["bicubic", "bilinear"])
def test_fast_path_matches_torch_path(composite_calls, warp_mode, monkeypatch):
    """Same alpha and changed-pixel mask, image within one grey level on a handful of pixels."""
    settings = CompositeSettings(feather_px=3.0, warp_mode=warp_mode)
    for a, k in composite_calls:
        k = {**k, "settings": settings}
        assert composite_module._takes_fast_path(a[0], a[1], a[2], k["flow"], k["opacity"], settings)
        fast = composite_module.composite(*a, **k)
        with monkeypatch.context() as m:
            m.setattr(composite_module, "_takes_fast_path", lambda *_: False)
            ref = composite_module.composite(*a, **k)
        assert torch.equal(fast.alpha, ref.alpha)
        assert torch.equal(fast.mask_used, ref.mask_used)
        diff = (fast.image.int() - ref.image.int()).abs()
        assert int(diff.max()) <= 1 and int((diff > 0).sum()) <= 50
        assert torch.equal(fast.image[~fast.mask_used], a[0][~fast.mask_used])


def test_fast_path_only_without_grad_on_cpu(composite_calls):
    """A render that requires grad (or a float photo) takes the differentiable torch path."""
    a, k = composite_calls[0]
    s = CompositeSettings()
    rendered = a[1].clone().requires_grad_(True)
    assert not composite_module._takes_fast_path(a[0], rendered, a[2], k["flow"], k["opacity"], s)
    assert not composite_module._takes_fast_path(a[0].float() / 255, a[1], a[2], k["flow"], k["opacity"], s)
    assert not composite_module._takes_fast_path(a[0], a[1], a[2], k["flow"], k["opacity"],
                                                 CompositeSettings(color_match=True))
