"""The compiled per-photo preparation paths against their torch references, on real photos (dev photos, astronaut)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from affectsynth import prepare
from affectsynth.face_unwrap import unwrap_face
from affectsynth.render.unwrap import _fill_texture_torch, fill_texture, unwrap_texture, uv_tile_triangles
from affectsynth.synthesizer import Synthesizer
from affectsynth.teeth import TEETH_UV_TILE, TeethSettings, teeth_pixels

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


def _teeth_pixels_whole_photo(photo, opening, skin_color, mouth_width_px):
    """`teeth_pixels` with default settings computed over the whole photo (the reference of its window)."""
    F = torch.nn.functional
    s = TeethSettings()
    height = int(opening.sum(0).max()) if bool(opening.any()) else 0
    if mouth_width_px < s.min_mouth_px or height < max(s.min_opening_px, s.min_opening * mouth_width_px):
        return None
    grow = max(1, int(round(s.grow * mouth_width_px)))
    near = F.max_pool2d(opening.float()[None, None], 2 * grow + 1, stride=1, padding=grow)[0, 0] > 0.5
    luma = torch.tensor((0.299, 0.587, 0.114))
    skin_sat = float((skin_color.max() - skin_color.min()) / skin_color.max().clamp_min(1e-6))
    hi, lo = photo.max(-1).values, photo.min(-1).values
    pale = (photo @ luma >= s.min_luma * float(skin_color @ luma))
    pale &= (hi - lo) / hi.clamp_min(1e-6) <= min(s.max_saturation_abs, s.max_saturation * skin_sat + 0.05)
    teeth = pale & opening
    if int(teeth.sum()) < max(4, s.min_fraction * float(opening.sum())):
        return None
    band = pale & near
    for _ in range(grow):
        teeth = band & (F.max_pool2d(teeth.float()[None, None], 3, stride=1, padding=1)[0, 0] > 0.5)
    return teeth


def test_teeth_pixels_window_matches_the_whole_photo(faces):
    """The same teeth pixels (bit for bit) as the computation over the whole photo, with the mouth
    anywhere (also cut by the photo's edge)."""
    shown = 0
    for face in faces:
        photo, opening, fit = face["photo"], face["opening"], face["fit"]
        width = prepare._mouth_width_px(fit)
        skin = prepare._landmark_skin_color(photo, fit)
        rows = torch.nonzero(opening.any(1))[:, 0]
        for dy in (0, -int(rows[0]) - 2):  # as is, and shifted so that the photo's top edge cuts the opening
            p, o = torch.roll(photo, dy, 0), torch.roll(opening, dy, 0)
            if dy:
                o[int(rows[-1]) + dy + 1:] = False
            got = teeth_pixels(p, o, skin, mouth_width_px=width)
            want = _teeth_pixels_whole_photo(p, o, skin, width)
            assert (got is None) == (want is None)
            if want is not None:
                assert torch.equal(got, want) and int(want.sum()) > 20
                shown += 1
    assert shown >= 4


@pytest.mark.parametrize("part", ["skin", "teeth"])
def test_compiled_fill_matches_fill_texture(faces, part):
    """The filled texture of real unwraps (skin with its mirror map, teeth without) equals the torch path's
    to float rounding, seen texels bit for bit."""
    checked = 0
    for face in faces:
        if part == "teeth" and face["teeth"] is None:
            continue
        un, _mask = _reference(face, part)
        vis = un.visible.to(torch.float32)
        mirror = prepare._mirror_map(face["synth"].renderer, face["res"]) if part == "skin" else None
        want = _fill_texture_torch(un.texture, vis, mirror, 2)
        got = fill_texture(un.texture, vis, mirror_uv=mirror)
        assert float((got - want).abs().max()) < 1e-5
        assert torch.equal(got[un.visible], un.texture[un.visible])
        assert float((want - un.texture).abs().max()) > 0.1  # the fill changed the unseen texels
        checked += 1
    assert checked >= 2


def test_compiled_seen_weight_equals_the_pooling_ops(faces):
    """The photo weight of real unwraps, bit for bit as the pooling ops compute it."""
    for face in faces:
        un, _mask = _reference(face, "skin")
        got = prepare._seen_weight(un.visible)
        want = prepare._seen_weight_torch(un.visible, erode=2, blur=5)
        assert torch.equal(got, want)
        assert 0.0 < float(want.mean()) < 1.0 and bool(((want > 0) & (want < 1)).any())


def test_compiled_teeth_soft_edge_equals_avg_pool(faces):
    """The teeth weight's 3 x 3 box mean, bit for bit as ``avg_pool2d`` computes it, on real teeth unwraps."""
    from affectsynth import teeth

    checked = 0
    for face in faces:
        if face["teeth"] is None:
            continue
        un, _mask = _reference(face, "teeth")
        w = un.weight * un.visible
        want = teeth._soft_edge_torch(w)
        assert torch.equal(teeth._soft_edge(w), want) and float(want.max()) > 0.5
        checked += 1
    assert checked >= 2


def test_push_pull_kernel_matches_torch_path_on_real_unwraps(faces):
    """The compiled push-pull of real unwrapped textures (skin and teeth) against the torch path."""
    from affectsynth.render import inpaint

    for face in faces[:3]:
        for part in ("skin", "teeth"):
            if part == "teeth" and face["teeth"] is None:
                continue
            un, _mask = _reference(face, part)
            img, w = un.texture[None], un.visible.to(torch.float32)[None]
            fast = inpaint._push_pull_kernel(img, w, 1)
            torch.testing.assert_close(fast, inpaint._push_pull_torch(img, w, 1), rtol=0, atol=1e-6)
            assert torch.equal(fast[w >= 1], img[w >= 1]) and float(fast[w == 0].abs().max()) > 0.1


def test_digest_memo_reuses_only_an_unchanged_image(dev_photos):
    """The memo gives `image_digest` of every image: the same content (same or another array) hits,
    an edit in place or another photo is hashed anew."""
    from affectsynth.cache import DigestMemo, image_digest

    a = np.asarray(Image.open(dev_photos / f"{PHOTOS[0]}.jpg").convert("RGB")).copy()
    b = np.asarray(Image.open(dev_photos / f"{PHOTOS[1]}.jpg").convert("RGB"))
    memo = DigestMemo()
    first = memo(a)
    assert first == image_digest(a) == memo(a.copy())
    a[10, 10, 0] ^= 1  # edited in place: the same array object, new content
    assert memo(a) == image_digest(a) != first
    assert memo(b) == image_digest(b) and memo(a[:-1]) == image_digest(a[:-1])
    assert memo(a.astype(np.uint16)) == image_digest(a.astype(np.uint16))


def test_crop_square_equals_pil_crop_then_resize(dev_photos):
    """The crop cut from the array gives PIL's crop + resize bit for bit: inside the photo, over its
    edges (black outside), larger than the photo, and wholly outside."""
    from affectsynth.crop import crop_square, face_square_box

    image = np.asarray(Image.open(dev_photos / f"{PHOTOS[0]}.jpg").convert("RGB"))
    H, W = image.shape[:2]
    boxes = [(W * 0.4, H * 0.3, W * 0.6, H * 0.6), (-20.0, -10.0, 60.0, 70.0), (W - 50.0, H - 40.0, W + 10.0, H + 5.0),
             (0.0, 0.0, float(W), float(H)), (W + 100.0, 10.0, W + 150.0, 60.0)]
    for box in boxes:
        x0, y0, side = face_square_box(box)
        want = Image.fromarray(image).crop((x0, y0, x0 + side, y0 + side)).resize((256, 256), Image.LANCZOS,
                                                                                  reducing_gap=3.0)
        got = crop_square(image, box, 256)
        assert got.shape == (256, 256, 3) and np.array_equal(got, np.asarray(want))


def test_compiled_unwrap_of_a_face_outside_the_photo_sees_nothing(faces):
    face = faces[0]
    away = face["verts"] + torch.tensor([1000.0, 0.0, 0.0])  # far to the right of the photo
    un = unwrap_face(face["photo"], away, face["synth"].renderer, face["fit"].camera, "skin",
                     resolution=face["res"], photo_mask=None, min_cos=0.05)
    assert not bool(un.visible.any()) and float(un.texture.abs().max()) == 0.0
    m = face["synth"].model  # the torch path too (its depth box has the same 4 entries)
    ref = unwrap_texture(face["photo"], away, m.triangles, m.uv, m.triangle_uv, face["fit"].camera,
                         resolution=face["res"], triangle_mask=face["synth"].renderer.skin, min_cos=0.05)
    assert not bool(ref.visible.any())


def test_unwrap_texture_refuses_texels_of_another_resolution(faces):
    from affectsynth.face_unwrap import face_uv_texels

    face = faces[0]
    m, r = face["synth"].model, face["synth"].renderer
    with pytest.raises(ValueError, match="texels are for R="):
        unwrap_texture(face["photo"], face["verts"], m.triangles, m.uv, m.triangle_uv, face["fit"].camera,
                       resolution=face["res"] * 2, triangle_mask=r.skin, min_cos=0.05,
                       texels=face_uv_texels(r, "skin", face["res"]))


def test_compiled_depth_buffer_equals_interpolated_rasterization(faces):
    """The depth buffer's compiled z (from the rasterizer's ids) is bitwise the z that
    `interpolate` gives over `rasterize`'s barycentrics, the path it replaces; and
    `_depth_buffer` sees the same pixels as the rasterizer."""
    from affectsynth.render.camera import to_clip
    from affectsynth.render.interpolate import interpolate
    from affectsynth.render.rasterize import rasterize
    from affectsynth.render.unwrap import UnwrapSettings, _depth_buffer, _depth_from_visibility

    for face in faces:
        verts, tri, cam = face["verts"].float(), face["synth"].model.triangles.to(torch.int32), face["fit"].camera
        z = verts[:, 2]
        for scale in (1.0, 0.6):  # the photo's size, and a downscaled buffer
            w, h = int(cam.width * scale), int(cam.height * scale)
            k = type(cam)(cam.fx * scale, cam.fy * scale, cam.cx * scale, cam.cy * scale, w, h)
            clip = to_clip(verts[None], k.projection_matrix(near=float(z.min()) * 0.5, far=float(z.max()) * 2 + 1,
                                                          dtype=torch.float32))
            rast, _ = rasterize(clip, tri, (h, w), grad_db=False)
            zb, _ = interpolate(z[None, :, None], rast, tri)
            cover = rast[0, :, :, 3] > 0
            ref = torch.where(cover, zb[0, :, :, 0], torch.full_like(zb[0, :, :, 0], float("inf")))
            got, got_cover = _depth_from_visibility(clip, tri, z, (h, w))
            assert int(cover.sum()) > 1000
            assert torch.equal(got_cover, cover)
            assert torch.equal(got, ref)
        zbuf, zcover, _ = _depth_buffer(verts, tri, cam, (cam.height, cam.width), UnwrapSettings().max_depth_res, None)
        assert torch.equal(torch.isfinite(zbuf), zcover) and int(zcover.sum()) > 1000
