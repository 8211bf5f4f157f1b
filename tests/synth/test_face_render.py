"""FaceRenderer's mouth: teeth read as a continuous row, shaded, on a real fit (astronaut)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from affectsynth.blendshapes import Expression
from affectsynth.face_render import FaceRenderer, MouthMaterials, _close_teeth_gaps, _opening_thickness
from affectsynth.render.camera import project_points
from affectsynth.synthesizer import Synthesizer


def test_gaps_between_teeth_take_the_teeth_colour_wider_openings_stay():
    kind = torch.full((5, 12), 3)  # socket
    kind[1:4, [1, 2, 4, 5, 9, 10]] = 1  # teeth: a 1-pixel gap at column 3, a 3-pixel gap at 6-8
    mouth = torch.zeros(5, 12, 3)
    mouth[kind == 1] = torch.tensor([0.9, 0.85, 0.8])
    mouth[kind == 3] = torch.tensor([0.2, 0.05, 0.05])
    out, new_kind = _close_teeth_gaps(mouth, kind, 1)
    assert torch.equal(new_kind[1:4, 3], torch.ones(3, dtype=kind.dtype))
    torch.testing.assert_close(out[2, 3], torch.tensor([0.9, 0.85, 0.8]))
    assert (new_kind[1:4, 6:9] == 3).all() and torch.equal(out[1:4, 6:9], mouth[1:4, 6:9])
    assert (new_kind[0] == 3).all() and (new_kind[4] == 3).all()  # nothing grows beyond the row


@pytest.fixture(scope="module")
def smile():
    """The astronaut's fit turned into a broad open smile, and what renders it."""
    import skimage.data

    synth = Synthesizer()
    image = np.ascontiguousarray(skimage.data.astronaut())
    fit = synth.fit(image)[0]
    prepared = synth.prepare(image, fit)
    weights = synth.target_weights(Expression("happiness"), prepared.fit)
    verts = synth.model.reconstruct(prepared.fit, expression=weights)
    cam = prepared.fit.camera
    pix = project_points(verts, cam)
    return synth, prepared, verts, pix


def _render(synth, prepared, verts, pix, materials):
    """Colour and material kind (0 skin, 1 teeth, 2 gums/tongue, 3 socket) of the face window."""
    r = FaceRenderer(synth.model, materials)
    cam = prepared.fit.camera
    window = r.window_for(pix[r.drawn_vertices], (cam.width, cam.height))
    out = r.render(verts, prepared.texture, cam, window, skin_color=prepared.skin_color)
    return out.color.numpy(), out.kind.clamp_min(0).numpy()


def test_teeth_show_as_a_row_not_a_comb(smile):
    """Across the teeth row of a smile, the crowns' gaps do not show the dark mouth behind."""
    closed, kind = _render(*smile, MouthMaterials())
    combs, _ = _render(*smile, dataclasses.replace(MouthMaterials(), teeth_gap_px=0))
    rows, cols = np.nonzero(kind == 1)
    assert rows.size > 50  # teeth do show
    box = (slice(rows.min(), rows.max() + 1), slice(cols.min(), cols.max() + 1))
    mouth = kind[box] > 0
    dark = lambda c: float((c[box].mean(-1)[mouth] < 0.3).mean())  # noqa: E731
    assert dark(closed) < dark(combs) - 0.02, (dark(closed), dark(combs))  # measured 0.07 vs 0.11


def test_teeth_are_shaded_not_flat(smile):
    """Facing-ratio shading spreads the teeth's brightness (rounded), where ambient 1 keeps one tone."""
    no_depth = dataclasses.replace(MouthMaterials(), depth_falloff_cm=1e9, teeth_gap_px=0, min_opening=0.0)
    flat, kind = _render(*smile, dataclasses.replace(no_depth, ambient=1.0))
    shaded, _ = _render(*smile, no_depth)
    inner = kind == 1
    inner[1:-1, 1:-1] &= inner[:-2, 1:-1] & inner[2:, 1:-1] & inner[1:-1, :-2] & inner[1:-1, 2:]  # off the edges
    assert inner.sum() > 30
    assert shaded.mean(-1)[inner].std() > 2 * flat.mean(-1)[inner].std() + 0.01


def test_thin_openings_between_the_lips_are_shadow_thick_ones_show_the_mouth():
    mask = torch.zeros(20, 30, dtype=torch.bool)
    mask[5:7, 2:12] = True  # a 2-pixel slit
    mask[4:16, 16:28] = True  # a 12-pixel opening
    shown = _opening_thickness(mask, 3)
    assert float(shown[5:7, 4:10].max()) == 0.0
    assert float(shown[6:14, 18:26].min()) == 1.0
    assert float(shown[~mask].min()) == 1.0  # outside the mouth: untouched
