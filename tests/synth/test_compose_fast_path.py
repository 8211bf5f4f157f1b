"""The compiled CPU paths of the compose chain (`render.composite`, `render.warp`'s motion field) against their torch paths, on real renders of the astronaut."""

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
warp_module = importlib.import_module("affectsynth.render.warp")
shading_module = importlib.import_module("affectsynth.expression_shading")


#: the `compose` functions whose calls the fixture records
RECORDED = ("composite", "motion_window", "motion_field", "shading_ratio", "apply_shading")


@pytest.fixture(scope="module")
def recorded_calls() -> dict[str, list[tuple[tuple, dict]]]:
    """The arguments of every call of the RECORDED functions of three targets on the astronaut cropped to 256 px."""
    import skimage.data

    synth = Synthesizer()
    image = np.asarray(skimage.data.astronaut())
    crop, fit = synth.crop_to_face(image, synth.fit(image)[0], 256)
    calls: dict[str, list[tuple[tuple, dict]]] = {name: [] for name in RECORDED}
    originals = {name: getattr(compose, name) for name in RECORDED}

    def recording(name):
        def record(*a, **k):
            calls[name].append((a, k))
            return originals[name](*a, **k)
        return record

    for name in RECORDED:
        setattr(compose, name, recording(name))
    try:
        for name in ("happiness", "surprise", "anger"):
            synth.synthesize(crop, Expression(name, 1.0), fit=fit)
    finally:
        for name, fn in originals.items():
            setattr(compose, name, fn)
    return calls


@pytest.fixture(scope="module")
def composite_calls(recorded_calls) -> list[tuple[tuple, dict]]:
    """The arguments of every `composite` call of three targets on the astronaut cropped to 256 px."""
    return recorded_calls["composite"]


def test_compiled_motion_field_matches_torch_path(recorded_calls, monkeypatch):
    """The compiled motion window and field (rasterize, push-pull, distance fade, upsampling in one
    kernel) against the torch ops: same windows, zero exactly where the torch field is, and within
    float rounding (1e-3 px of flows of several pixels) elsewhere."""
    for kind in ("motion_window", "motion_field"):
        for a, k in recorded_calls[kind]:
            assert warp_module._compiled_applies(a[0], a[1], k.get("dst_depth"))
            fast = getattr(warp_module, kind)(*a, **k)
            with monkeypatch.context() as m:
                m.setattr(warp_module, "_compiled_applies", lambda *_: False)
                ref = getattr(warp_module, kind)(*a, **k)
            if kind == "motion_window":
                assert fast == ref
                continue
            assert fast.shape == ref.shape and float(ref.abs().max()) > 2.0
            assert torch.equal(fast == 0, ref == 0)
            assert float((fast - ref).abs().max()) < 1e-3


def test_compiled_distance_matches_scipy(composite_calls):
    """The motion kernel's distance to the covered pixels is scipy's Euclidean distance transform,
    on the silhouettes of real renders, with square and with uneven pixel spacings."""
    from scipy.ndimage import distance_transform_edt

    from affectsynth.render._kernels.motion import _distance_to_cover

    for a, _ in composite_calls:
        cover = (a[2] > 0.5).float().numpy()
        for spacing in ((2.0, 2.0), (251 / 126, 255 / 128)):
            expected = distance_transform_edt(cover == 0, sampling=spacing)
            np.testing.assert_allclose(_distance_to_cover(cover, *spacing), expected, rtol=1e-12, atol=1e-12)


def test_pixel_bounds_are_those_of_the_gathered_points(recorded_calls):
    """The compiled bounding box of two point sets (some of their vertices, or all) is the min and max
    of the points gathered into one tensor, exactly."""
    for a, k in recorded_calls["motion_window"]:
        src, dst, vertices = a[0], a[1], k["vertices"]
        for index in (vertices, None):
            pts = torch.cat([src, dst]) if index is None else torch.cat([src[index], dst[index]])
            expected = torch.stack([pts.min(0).values, pts.max(0).values])
            assert torch.equal(warp_module.pixel_bounds(src, dst, index), expected)


def test_compiled_motion_field_only_without_grad(recorded_calls):
    """Pixels that require grad (or float64 ones) take the differentiable torch path."""
    a, k = recorded_calls["motion_field"][0]
    assert not warp_module._compiled_applies(a[0].clone().requires_grad_(True), a[1], k.get("dst_depth"))
    assert not warp_module._compiled_applies(a[0].double(), a[1].double(), None)


def test_compiled_shading_matches_torch_path(recorded_calls, monkeypatch):
    """The expression shading's kernels (mesh ratio on the grid, skin edges, fold surroundings and
    lifts, the shaded window) against its torch ops: the ratio and lift within float rounding, the
    shaded image within one grey level on a few pixels; every call really shades, some lift folds."""
    lifted = 0
    for (a, k), (sa, sk) in zip(recorded_calls["shading_ratio"], recorded_calls["apply_shading"]):
        fast = shading_module.shading_ratio(*a, **k)
        with monkeypatch.context() as m:
            m.setattr(shading_module, "_compiled_applies", lambda *_: False)
            ref = shading_module.shading_ratio(*a, **k)
            ref_image = shading_module.apply_shading(sa[0], ref, *sa[2:], **sk)
        rendered, renderer = a[1], a[5]
        tid = rendered.rast[0, ..., 3].long() - 1
        assert torch.equal(shading_module._skin_pixels(rendered, renderer),
                           (tid >= 0) & (renderer.tri_kind[tid.clamp_min(0)] == 0))
        assert float((ref.ratio - 1).abs().max()) > 0.05
        assert float((fast.ratio - ref.ratio).abs().max()) < 1e-4
        assert (fast.lift is None) == (ref.lift is None)
        if ref.lift is not None:
            lifted += 1
            assert float((fast.lift - ref.lift).abs().max()) < 1e-4
            assert float((fast.smooth - ref.smooth).abs().max()) < 1e-4
        diff = (shading_module.apply_shading(sa[0], fast, *sa[2:], **sk).int() - ref_image.int()).abs()
        assert int(diff.max()) <= 1 and int((diff > 0).sum()) <= 50
    assert lifted > 0


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
