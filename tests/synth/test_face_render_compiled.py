"""The face render's compiled CPU passes against the torch (differentiable) path, on real renders
of the astronaut's fit: the same pixels, up to float rounding."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from affectsynth.blendshapes import Expression
from affectsynth.face_render import FaceRenderer, _close_slits, _close_teeth_gaps
from affectsynth.render.camera import project_points
from affectsynth.synthesizer import Synthesizer

TARGETS = (Expression("happiness"), Expression("surprise"), Expression("anger", variant="closed"))


@pytest.fixture(scope="module")
def shaded():
    """Per target: (skin, mouth, kind, own, shadow) of the shaded face window before the mouth's
    pixel passes, as `FaceRenderer.render` computes them (photo teeth included)."""
    import skimage.data

    synth = Synthesizer()
    image = np.ascontiguousarray(skimage.data.astronaut())
    prepared = synth.prepare(image, synth.fit(image)[0])
    r = FaceRenderer(synth.model)
    cam = prepared.fit.camera
    out = []
    for target in TARGETS:
        verts = synth.model.reconstruct(prepared.fit, expression=synth.target_weights(target, prepared.fit))
        window = r.window_for(project_points(verts, cam)[r.drawn_vertices], (cam.width, cam.height))
        raster = r.rasterize_window(verts, cam, window)
        colors = r.material_colors(prepared.skin_color)
        shadow = colors[3] * 0.5
        colors[1] = prepared.teeth.color.to(colors)
        skin, mouth, own, _ = r._shade_compiled(verts, raster, prepared.texture, colors, shadow, None,
                                                prepared.photo_weight, prepared.teeth)
        out.append((skin, mouth, raster.kind.clamp_min(0), own, shadow, r, verts, raster, window, cam))
    return out


def _torch_path(fn, mouth, *args, **kwargs):
    """`fn` on the differentiable path: the same inputs, `mouth` requiring grad."""
    with torch.enable_grad():
        result = fn(mouth.clone().requires_grad_(True), *args, **kwargs)
    return tuple(t.detach() for t in result) if isinstance(result, tuple) else result.detach()


@pytest.mark.parametrize("i", range(len(TARGETS)), ids=[t.name for t in TARGETS])
def test_compiled_teeth_gap_closing_matches_the_torch_path(shaded, i):
    _, mouth, kind, own, _ = shaded[i][:5]
    if not bool((kind == 1).any()):
        pytest.skip("this target shows no teeth")
    fast_mouth, fast_kind = _close_teeth_gaps(mouth, kind, 1, shade=0.72, own=own)
    slow_mouth, slow_kind = _torch_path(_close_teeth_gaps, mouth, kind, 1, shade=0.72, own=own)
    assert fast_mouth.grad_fn is None
    assert bool((slow_kind != kind).any())  # some gaps were closed: the comparison means something
    assert torch.equal(fast_kind, slow_kind)
    torch.testing.assert_close(fast_mouth, slow_mouth, rtol=0, atol=1e-6)
    wide = _close_teeth_gaps(mouth, kind, 2, shade=0.5, own=None)
    torch.testing.assert_close(wide[0], _torch_path(_close_teeth_gaps, mouth, kind, 2, shade=0.5)[0], rtol=0, atol=1e-6)


@pytest.mark.parametrize("i", range(len(TARGETS)), ids=[t.name for t in TARGETS])
@pytest.mark.parametrize("min_px", [4, 9])
def test_compiled_slit_closing_matches_the_torch_path(shaded, i, min_px):
    skin, mouth, kind, _, shadow = shaded[i][:5]
    mask = kind > 0
    fast = _close_slits(mouth, skin, mask, min_px, shadow=shadow, lip_line=0.8)
    slow = _torch_path(_close_slits, mouth, skin, mask, min_px, shadow=shadow, lip_line=0.8)
    assert fast.grad_fn is None
    assert bool(((slow - mouth).abs() > 1e-3).any())  # some pixels changed
    torch.testing.assert_close(fast, slow, rtol=0, atol=1e-6)


@pytest.mark.parametrize("i", range(len(TARGETS)), ids=[t.name for t in TARGETS])
def test_compiled_mouth_attributes_match_the_torch_path_where_the_mouth_shows(shaded, i):
    """Depth, facing ratio and light of the vertices of every mouth pixel's triangle."""
    r, verts, raster = shaded[i][5:8]
    mouth_px = raster.kind > 0
    if not bool(mouth_px.any()):
        pytest.skip("this target shows no mouth interior")
    used = r.tri.long()[raster.rast[0, ..., 3][mouth_px].long() - 1].unique()
    fast = torch.from_numpy(r._mouth_attributes_compiled(verts, raster))
    slow = r._mouth_attributes(verts)
    assert float(slow[used, 1].std()) > 0.05  # facing ratios vary: a wrong normal would show
    torch.testing.assert_close(fast[used], slow[used], rtol=0, atol=1e-6)


@pytest.mark.parametrize("i", range(len(TARGETS)), ids=[t.name for t in TARGETS])
def test_compiled_window_raster_matches_the_torch_path(shaded, i):
    """Clip coordinates, rasterization and material kinds of the window: vertices without grad (the
    compiled projection) and with grad (torch's `to_clip`)."""
    r, verts, fast, window, cam = shaded[i][5:]
    with torch.enable_grad():
        slow = r.rasterize_window(verts.clone().requires_grad_(True), cam, window)
    assert slow.clip.grad_fn is not None and fast.clip.grad_fn is None
    torch.testing.assert_close(fast.clip, slow.clip.detach(), rtol=1e-6, atol=0)
    assert torch.equal(fast.rast[..., 3], slow.rast[..., 3].detach())
    assert torch.equal(fast.kind, slow.kind)
    assert set(fast.kind.unique().tolist()) >= {-1, 0}
    torch.testing.assert_close(fast.rast, slow.rast.detach(), rtol=0, atol=1e-5)
