"""The compiled per-photo preparation paths against their torch references, on real photos (dev photos, astronaut)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from affectsynth import prepare
from affectsynth.face_unwrap import unwrap_face
from affectsynth.render.unwrap import unwrap_texture, uv_tile_triangles
from affectsynth.synthesizer import Synthesizer
from affectsynth.teeth import TEETH_UV_TILE, teeth_pixels

#: dev photos with an open mouth showing teeth, and a closed one
PHOTOS = ("2008_001322", "2008_002470", "Tom_Cruise_avp_2014_4", "bald_guys")


@pytest.fixture(scope="module")
def faces(dev_photos) -> list[dict]:
    """Per photo (largest face, cropped to 256 px as `generate --size 256` does): what `prepare_face` unwraps from."""
    import skimage.data

    synth = Synthesizer()
    images = [np.ascontiguousarray(skimage.data.astronaut())]
    images += [np.asarray(Image.open(dev_photos / f"{n}.jpg").convert("RGB")) for n in PHOTOS]
    out = []
    for image in images:
        crop, fit = synth.crop_to_face(image, synth.fit(image)[0], 256)
        photo = torch.from_numpy(crop.copy()).float() / 255.0
        opening = torch.from_numpy(prepare._mouth_opening_mask(fit, crop.shape[:2]))
        skin = prepare._landmark_skin_color(photo, fit)
        px = teeth_pixels(photo, opening, skin, mouth_width_px=prepare._mouth_width_px(fit))
        out.append({"synth": synth, "fit": fit, "photo": photo, "opening": opening, "teeth": px,
                    "verts": synth.model.reconstruct(fit), "res": synth.texture_resolution(fit)})
    assert sum(f["teeth"] is not None for f in out) >= 2, "the photos should show teeth"
    return out


def _reference(face: dict, part: str):
    synth = face["synth"]
    m, r = synth.model, synth.renderer
    if part == "skin":
        mask = ~(face["opening"] if face["teeth"] is None else face["opening"] | face["teeth"])
        return unwrap_texture(face["photo"], face["verts"], m.triangles, m.uv, m.triangle_uv, face["fit"].camera,
                              resolution=face["res"], triangle_mask=r.skin, min_cos=0.05, photo_mask=mask), mask
    tri, tri_uv = m.triangles[r.teeth], m.triangle_uv[r.teeth]
    ref = unwrap_texture(face["photo"], face["verts"], tri, m.uv, tri_uv, face["fit"].camera, resolution=face["res"],
                         uv_tile=TEETH_UV_TILE, photo_mask=face["teeth"], min_cos=0.05)
    assert bool(uv_tile_triangles(m.uv, tri_uv, tile=TEETH_UV_TILE).all())
    return ref, face["teeth"]


@pytest.mark.parametrize("part", ["skin", "teeth"])
def test_compiled_unwrap_matches_unwrap_texture(faces, part):
    """Same seen texels (all but a few at the thresholds), same colour and weight to float rounding."""
    checked = 0
    for face in faces:
        if part == "teeth" and face["teeth"] is None:
            continue
        ref, mask = _reference(face, part)
        fast = unwrap_face(face["photo"], face["verts"], face["synth"].renderer, face["fit"].camera, part,
                           resolution=face["res"], photo_mask=mask, min_cos=0.05)
        assert fast.texture.shape == ref.texture.shape and fast.visible.dtype == torch.bool
        seen = int(ref.visible.sum())
        assert seen > (2000 if part == "skin" else 20)
        assert int((fast.visible != ref.visible).sum()) <= max(2, seen // 2000)
        both = fast.visible & ref.visible
        assert float((fast.texture - ref.texture)[both].abs().max()) < 1e-4
        assert float((fast.weight - ref.weight)[both].abs().max()) < 1e-4
        assert float(fast.texture[~fast.visible].abs().max()) == 0.0
        checked += 1
    assert checked >= 2


def test_unwrap_face_takes_the_torch_path_for_autograd(faces):
    face = faces[0]
    photo = face["photo"].clone().requires_grad_(True)
    un = unwrap_face(photo, face["verts"], face["synth"].renderer, face["fit"].camera, "skin",
                     resolution=face["res"], photo_mask=None, min_cos=0.05)
    un.texture.sum().backward()
    assert photo.grad is not None and float(photo.grad.abs().sum()) > 0
