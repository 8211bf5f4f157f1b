"""Synthesizer end to end on real photos: round trip, untouched background, open mouth, labels,
intensity, crops, errors. Real components only (MediaPipe, the fitter, the CPU renderer)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from PIL import Image

from affectsynth.blendshapes import AUs, Expression, VA
from affectsynth.crop import crop_square
from affectsynth.render.camera import project_points
from affectsynth.prepare import _mouth_opening_mask
from affectsynth.result import SynthLabels
from affectsynth.synthesizer import SynthSettings, Synthesizer


@pytest.fixture(scope="module")
def synth() -> Synthesizer:
    return Synthesizer()


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    import skimage.data

    return np.ascontiguousarray(skimage.data.astronaut())


@pytest.fixture(scope="module")
def fit(synth, astronaut):
    fits = synth.fit(astronaut)
    assert len(fits) == 1
    return fits[0]


def _box(fit) -> tuple[slice, slice]:
    x0, y0, x1, y1 = fit.bbox
    return slice(int(y0), int(math.ceil(y1))), slice(int(x0), int(math.ceil(x1)))


def _mad(a: np.ndarray, b: np.ndarray, box) -> float:
    return float(np.abs(a[box].astype(np.float64) - b[box].astype(np.float64)).mean())


def _psnr(a: np.ndarray, b: np.ndarray, mask: np.ndarray | None = None) -> float:
    err = (np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2
    mse = float(err[mask].mean() if mask is not None else err.mean())
    return 10 * math.log10(1.0 / max(mse, 1e-12))


def _round_trip_psnr(synth: Synthesizer, image: np.ndarray, fit) -> float:
    """PSNR (dB) of the raw re-render of the fit with its own expression vs the photo, over rendered
    skin (coverage > 0.5, skin triangles, outside the photo's inner-lip polygon)."""
    prepared = synth.prepare(image, fit)
    r, cam = synth.renderer, prepared.fit.camera
    pix = project_points(prepared.vertices, cam)
    window = r.window_for(pix[r.drawn_vertices], (cam.width, cam.height))
    out = r.render(prepared.vertices, prepared.texture, cam, window, skin_color=prepared.skin_color)
    x0, y0, w, h = window
    skin = (out.kind == 0).numpy()
    lips = _mouth_opening_mask(prepared.fit, image.shape[:2])[y0:y0 + h, x0:x0 + w]
    mask = skin & (out.coverage.numpy() > 0.5) & ~lips
    photo = image[y0:y0 + h, x0:x0 + w].astype(np.float32) / 255.0
    return _psnr(out.color.numpy(), photo, mask)


# ---------------------------------------------------------------------------------- round trip
def test_round_trip_reaches_30db(synth, astronaut, fit):
    """Re-rendering the fitted expression reproduces the photo inside the skin (issue 4: >= 30 dB).

    scripts/roundtrip_psnr.py measures every dev-photo face.
    """
    assert _round_trip_psnr(synth, astronaut, fit) >= 30.0


# ---------------------------------------------------------------------------------- composite
def test_output_size_dtype_and_untouched_background(synth, astronaut, fit):
    res = synth.synthesize(astronaut, Expression("surprise"), fit=fit)
    assert res.image.shape == astronaut.shape and res.image.dtype == np.uint8
    changed = np.any(res.image != astronaut, axis=-1)
    assert changed.sum() > 1000  # the face did change
    # far from the face (the face box grown by its own size on every side) nothing changes
    x0, y0, x1, y1 = fit.bbox
    s = max(x1 - x0, y1 - y0)
    far = np.ones(changed.shape, bool)
    far[max(0, int(y0 - s)):int(y1 + s), max(0, int(x0 - s)):int(x1 + s)] = False
    assert far.sum() > 0.5 * far.size
    np.testing.assert_array_equal(res.image[far], astronaut[far])
    np.testing.assert_array_equal(res.image[:8, :8], astronaut[:8, :8])
    np.testing.assert_array_equal(res.image[-8:, -8:], astronaut[-8:, -8:])


# ---------------------------------------------------------------------------------- detail
def test_reusing_the_photo_keeps_the_skins_detail(synth, astronaut, fit):
    """Where the photo saw the skin, the warped photo shows instead of the re-rendered texture:
    one resampling instead of two keeps fine detail (freckles), measured as Laplacian variance."""
    from scipy.ndimage import laplace

    x0, y0, x1, y1 = (int(v) for v in fit.bbox)
    w, h = x1 - x0, y1 - y0
    box = (slice(y0 + h // 3, y0 + 2 * h // 3), slice(x0 + w // 8, x1 - w // 8))  # cheeks and nose
    detail = lambda img: float(laplace(img[box].astype(np.float64).mean(-1)).var())  # noqa: E731
    target = Expression("happiness", 0.3)
    reused = synth.synthesize(astronaut, target, fit=fit).image
    rerendered = Synthesizer(settings=SynthSettings(reuse_photo=False)).synthesize(astronaut, target, fit=fit).image
    # measured: photo 436, re-rendered 168, reused 289
    assert detail(reused) > 1.4 * detail(rerendered)
    assert detail(reused) > 0.5 * detail(astronaut)


# ---------------------------------------------------------------------------------- open mouth
def _mouth_box(landmarks) -> tuple[slice, slice]:
    lm = np.asarray(landmarks)
    xa, xb = sorted((lm[61, 0], lm[291, 0]))  # mouth corners
    ya, yb = lm[0, 1], lm[17, 1]  # upper lip top, lower lip bottom
    return slice(int(ya), int(math.ceil(yb))), slice(int(xa), int(math.ceil(xb)))


@pytest.mark.parametrize("target", [AUs({"AU26": 1.0, "AU25": 1.0}), Expression("surprise")], ids=["AU26+25", "surprise"])
def test_open_jaw_opens_the_mouth(synth, astronaut, fit, target):
    res = synth.synthesize(astronaut, target, fit=fit)
    assert res.labels.weights["jawOpen"] >= 0.5
    box = _mouth_box(res.labels.landmarks)
    before = astronaut[box].astype(np.float32) / 255
    after = res.image[box].astype(np.float32) / 255
    dark_before = float((before.max(-1) < 0.3).mean())
    dark_after = float((after.max(-1) < 0.3).mean())
    # the astronaut smiles with teeth showing: almost no dark pixel between her lips before,
    # a clearly dark mouth opening after (measured about 0.25-0.30 of the mouth box)
    assert dark_before < 0.05
    assert dark_after > 0.15
    assert after.mean() < before.mean() - 0.1


# ---------------------------------------------------------------------------------- labels
def test_labels_by_target_kind(synth, astronaut, fit):
    e = synth.synthesize(astronaut, Expression("happiness", 0.5), fit=fit).labels
    v = synth.synthesize(astronaut, VA(-0.4, 0.6), fit=fit).labels
    a = synth.synthesize(astronaut, AUs({"AU12": 1.0}), fit=fit).labels
    for lab in (e, v, a):
        assert isinstance(lab, SynthLabels) and len(lab.pose_deg) == 3
        lm = np.asarray(lab.landmarks)
        assert lm.shape == (468, 2)
        x0, y0, x1, y1 = fit.bbox
        inside = (lm[:, 0] > x0 - 20) & (lm[:, 0] < x1 + 20) & (lm[:, 1] > y0 - 20) & (lm[:, 1] < y1 + 20)
        assert inside.mean() > 0.95
        assert all(0.0 <= w <= 1.0 for w in lab.weights.values())
        row = lab.to_row()  # the manifest's fields, all present
        assert {"target_kind", "expression", "intensity", "valence", "arousal", "yaw", "pitch", "roll", "weights"} <= set(row)
    assert (e.target.kind, e.target.expression, e.target.intensity) == ("expression", "happiness", 0.5)
    # the VA label is where the expression model puts the target (not checked against a formula here:
    # see tests/blendshapes for the model's own VA map); happiness is pleasant and mildly aroused
    assert e.target.valence > 0.2 and e.target.arousal > 0.0
    assert e.weights.get("mouthSmile_L", 0) > 0.1
    assert (v.target.kind, v.target.expression, v.target.intensity) == ("va", "", None)
    assert (v.target.valence, v.target.arousal) == pytest.approx((-0.4, 0.6))
    assert a.target.kind == "aus" and dict(a.target.aus) == {"AU12": 1.0}
    assert a.target.valence is None and a.weights.get("mouthSmile_L", 0) > 0.1
    with pytest.warns(DeprecationWarning):
        assert e["weights"] == dict(e.weights)  # the old dict access still works, with a warning


def test_deterministic_and_head_rotation(astronaut, fit):
    s = Synthesizer(settings=SynthSettings(head_rotation_deg=(10, 5)))
    t = Expression("happiness", 1.0)
    r0 = s.synthesize(astronaut, t, fit=fit, rng_seed=0)
    again = s.synthesize(astronaut, t, fit=fit, rng_seed=0)
    np.testing.assert_array_equal(r0.image, again.image)
    assert r0.labels == again.labels
    r1 = s.synthesize(astronaut, t, fit=fit, rng_seed=1)
    h0, h1 = r0.labels.head_rotation_deg, r1.labels.head_rotation_deg
    assert h0 != h1
    assert abs(h0[0]) <= 10 and abs(h0[1]) <= 5
    assert not np.array_equal(r0.image, r1.image)
    # the output pose is the fitted pose turned by the extra yaw
    yaw_fit = fit.pose_deg[0]
    for r in (r0, r1):
        assert r.labels.pose_deg[0] - yaw_fit == pytest.approx(r.labels.head_rotation_deg[0], abs=0.5)


def test_labelled_pitch_matches_output_pose(astronaut, fit):
    s = Synthesizer(settings=SynthSettings(head_rotation_deg=(10, 5)))
    r = s.synthesize(astronaut, Expression("happiness"), fit=fit, rng_seed=0)
    assert r.labels.pose_deg[1] - fit.pose_deg[1] == pytest.approx(r.labels.head_rotation_deg[1], abs=0.5)


# ---------------------------------------------------------------------------------- intensity
def test_change_grows_with_intensity(synth, astronaut, fit):
    box = _box(fit)
    base = synth.synthesize(astronaut, Expression("happiness", 0.0), fit=fit).image
    changes = [_mad(synth.synthesize(astronaut, Expression("happiness", k), fit=fit).image, base, box)
               for k in (0.25, 0.5, 1.0)]
    assert changes[0] < changes[1] < changes[2]  # measured 5.2 < 8.1 < 10.7 (0-255 levels)


def test_neutral_on_a_neutral_fit_changes_little(astronaut, fit):
    # a fresh Synthesizer: the prepared-face cache keys on bbox and depth only, so a fit with other
    # expression weights would reuse the texture and fit prepared for `fit` (reported to the lead)
    s = Synthesizer()
    neutral_fit = fit.with_expression(s.target_weights(Expression("neutral"), fit))
    box = _box(fit)
    out = s.synthesize(astronaut, Expression("neutral"), fit=neutral_fit).image
    happy = s.synthesize(astronaut, Expression("happiness", 1.0), fit=neutral_fit).image
    assert _mad(out, astronaut, box) < 6.5  # measured 5.0: the round trip's texture loss
    assert _mad(happy, astronaut, box) > _mad(out, astronaut, box) + 2.0


# ---------------------------------------------------------------------------------- crops
def test_crop_to_face_matches_cropping_the_full_synthesis(synth, astronaut, fit):
    crop, cfit = synth.crop_to_face(astronaut, fit, 128)
    assert crop.shape == (128, 128, 3) and crop.dtype == np.uint8
    assert (cfit.camera.width, cfit.camera.height) == (128, 128)
    np.testing.assert_array_equal(crop, crop_square(astronaut, fit.bbox, 128, scale=1.6))
    t = Expression("surprise")
    on_crop = synth.synthesize(crop, t, fit=cfit).image
    of_full = crop_square(synth.synthesize(astronaut, t, fit=fit).image, fit.bbox, 128, scale=1.6)
    assert _psnr(on_crop / 255.0, of_full / 255.0) > 30.0  # measured 32.7 dB


# ---------------------------------------------------------------------------------- errors
def test_bad_images_raise(synth, astronaut):
    with pytest.raises(ValueError, match="uint8"):
        synth.synthesize(astronaut.astype(np.float32) / 255, Expression("happiness"))
    with pytest.raises(ValueError, match=r"\[H, W, 3\]"):
        synth.synthesize(astronaut[..., 0], Expression("happiness"))
    with pytest.raises(ValueError, match=r"\[H, W, 3\]"):
        synth.fit(np.dstack([astronaut, astronaut[..., :1]]))
    with pytest.raises(ValueError, match="no face"):
        synth.synthesize(np.full((96, 128, 3), 127, np.uint8), Expression("happiness"))


# ---------------------------------------------------------------------------------- real photos
def test_dev_photo_faces_synthesize(synth, dev_photos):
    image = np.asarray(Image.open(dev_photos / "2008_001322.jpg").convert("RGB"))
    fits = synth.fit(image)
    assert len(fits) >= 2
    sizes = [max(f.bbox[2] - f.bbox[0], f.bbox[3] - f.bbox[1]) for f in fits]
    assert sizes == sorted(sizes, reverse=True)
    res = synth.synthesize(image, AUs({"AU26": 1.0, "AU25": 1.0}), fit=fits[0])
    assert res.image.shape == image.shape
    box = _mouth_box(res.labels.landmarks)
    assert res.image[box].mean() < image[box].mean() - 20


def test_target_weights_replace_mouth_and_keep_own_eyes(synth, fit):
    names = synth.model.expression_names
    own = torch.zeros(len(names))
    own[names.index("mouthSmile_L")] = own[names.index("mouthSmile_R")] = 0.8  # a smiling photo...
    own[names.index("eyeSquint_L")] = own[names.index("eyeWide_R")] = 0.5  # ...with its own eyelids
    own[names.index("jawForward")] = 0.4  # and a shape no category drives
    own[names.index("mouthRight")] = 0.3  # and a mouth a little off-centre
    smiling = fit.with_expression(own)
    sad = dict(zip(names, synth.target_weights(Expression("sadness"), smiling).tolist()))
    assert sad["mouthSmile_L"] == 0.0 and sad["mouthSmile_R"] == 0.0  # the smile is replaced
    assert sad["eyeSquint_L"] == pytest.approx(0.5) and sad["eyeWide_R"] == pytest.approx(0.5)  # eyes kept
    assert sad["jawForward"] == pytest.approx(0.4)  # the person's own jaw posture is kept
    assert sad["mouthRight"] == pytest.approx(0.3) and sad["mouthLeft"] == 0.0  # and the off-centre mouth
    smirk = dict(zip(names, synth.target_weights(Expression("contempt", 1.0, "left"), smiling).tolist()))
    assert smirk["mouthLeft"] == pytest.approx(0.5) and smirk["mouthRight"] == pytest.approx(0.3)  # shifted from there
    surprised = dict(zip(names, synth.target_weights(Expression("surprise"), smiling).tolist()))
    assert surprised["eyeWide_L"] == pytest.approx(1.0)
    assert surprised["eyeSquint_L"] == pytest.approx(0.0, abs=1e-6)  # widening releases the squint
    angry = dict(zip(names, synth.target_weights(Expression("anger"), smiling).tolist()))
    assert angry["eyeSquint_R"] > 0.9 and angry["eyeWide_R"] < 0.5  # narrowing releases the widening


@pytest.mark.parametrize("variant, toward", [("right", -1), ("left", 1)])
def test_contempt_moves_the_mouth_toward_its_raised_corner(synth, astronaut, fit, variant, toward):
    """Contempt "right" (the subject's right: the image's left on a frontal face) raises that
    corner and shifts the whole mouth toward it, and the labels say so: the final sideways
    shift in ``weights``, which ``frozen`` then does not name."""
    base = synth.synthesize(astronaut, Expression("neutral"), fit=fit)
    smirk = synth.synthesize(astronaut, Expression("contempt", 1.0, variant), fit=fit)
    b, s = np.asarray(base.labels.landmarks), np.asarray(smirk.labels.landmarks)
    width = abs(b[291, 0] - b[61, 0])
    shift = (s[[0, 13, 14, 17], 0] - b[[0, 13, 14, 17], 0]).mean()  # the lips' midline
    assert toward * shift > 0.08 * width, (shift, width)
    raised, other = (61, 291) if variant == "right" else (291, 61)
    assert b[raised, 1] - s[raised, 1] > b[other, 1] - s[other, 1] + 1.0  # that corner rises more
    shape = "mouthRight" if variant == "right" else "mouthLeft"
    own = float(fit.expression[synth.model.expression_names.index(shape)])
    assert smirk.labels.weights[shape] == pytest.approx(min(1.0, own + 0.5), abs=1e-4)
    assert not {"mouthLeft", "mouthRight"} & set(smirk.labels.frozen)


def test_relighting_changes_one_side_and_is_labelled(synth, astronaut, fit):
    base = synth.synthesize(astronaut, Expression("neutral"), fit=fit)
    lit = synth.synthesize(astronaut, Expression("neutral"), fit=fit, light=(60.0, 1.0))
    assert base.labels.lighting is None
    assert lit.labels.lighting == (60.0, 1.0)
    x0, y0, x1, y1 = (int(v) for v in fit.bbox)
    cx = (x0 + x1) // 2
    diff = lit.image.astype(float) - base.image.astype(float)
    left, right = diff[y0:y1, x0:cx].mean(), diff[y0:y1, cx:x1].mean()
    # light from the image's right (+x) brightens that side relative to the other
    assert right - left > 2.0, (left, right)
    assert np.array_equal(lit.image[:5, :5], astronaut[:5, :5])


def test_grayscale_photo_stays_grayscale(synth, astronaut):
    """FER-style gray photos: the mouth interior and teeth take the photo's (lack of) colour."""
    gray = np.repeat(astronaut.mean(-1, keepdims=True).astype(np.uint8), 3, axis=-1)
    out = synth.synthesize(gray, Expression("surprise")).image
    spread = out.max(-1).astype(int) - out.min(-1).astype(int)
    assert spread.max() <= 2, f"colour appeared in a gray photo (max channel spread {spread.max()})"
    assert np.abs(out.astype(int) - gray.astype(int)).max() > 30  # the mouth did open


@pytest.mark.parametrize("limits, reason", [({"max_yaw_deg": 0.01}, "extreme-pose"), ({"max_fit_error": 1e-4}, "poor-fit")])
def test_generate_skips_faces_it_cannot_synthesize_well(tmp_path, synth, astronaut, limits, reason):
    """Faces turned beyond the limits, or fitted badly, get a skipped row with the reason."""
    from affectsynth.batch import GenerateSettings, plan_jobs, process_image
    from affectsynth.images import save_png

    save_png(tmp_path / "in" / "a.png", astronaut)
    settings = GenerateSettings(targets=(Expression("happiness"),), workers=1, **limits)
    job = plan_jobs(tmp_path / "in", tmp_path / "out", settings).jobs[0]
    rows = process_image(synth, job)
    assert [r.status for r in rows] == ["skipped"] and rows[0].reason == reason, rows
    ok = process_image(synth, plan_jobs(tmp_path / "in", tmp_path / "out",
                                        GenerateSettings(targets=(Expression("happiness"),), workers=1)).jobs[0])
    assert [r.status for r in ok] == ["ok"]


# ---------------------------------------------------------------------------------- batch API and gates
def test_fit_batch_matches_fitting_each_photo(synth, astronaut):
    """Fitting several photos in one batch finds the same faces as fitting them one by one."""
    small = np.asarray(Image.fromarray(astronaut).resize((256, 256)))
    blank = np.full((64, 64, 3), 127, np.uint8)
    batch = synth.fit_batch([astronaut, blank, small])
    assert [len(f) for f in batch] == [1, 0, 1]
    for one, alone in ((batch[0][0], synth.fit(astronaut)[0]), (batch[2][0], synth.fit(small)[0])):
        assert one.image_size == alone.image_size
        # the batched solver runs the same iterations: poses agree within a fraction of a degree
        assert np.allclose(one.pose_deg, alone.pose_deg, atol=0.5), (one.pose_deg, alone.pose_deg)
        assert abs(one.reprojection_error_px - alone.reprojection_error_px) < 0.1 * alone.reprojection_error_px + 0.05


def test_synthesize_many_equals_one_by_one(synth, astronaut, fit):
    targets = [Expression("sadness"), VA(0.3, 0.7), AUs({"AU12": 0.5})]
    many = synth.synthesize_many(astronaut, targets, fit=fit, rng_seed=3)
    for t, res in zip(targets, many):
        one = synth.synthesize(astronaut, t, fit=fit, rng_seed=3)
        np.testing.assert_array_equal(res.image, one.image)
        assert res.labels == one.labels
    assert len({r.image.tobytes() for r in many}) == 3  # three different faces


def test_synthesize_face_equals_synthesize(astronaut, fit):
    """A face made ready once (`Synthesizer.face`) gives every target what `synthesize` gives it:
    same image and labels, from a fresh synthesizer each (no prepared face cached before)."""
    targets = [Expression("happiness"), Expression("surprise", variant=None), VA(-0.4, 0.2)]
    ready, plain = Synthesizer(), Synthesizer()
    face = ready.face(astronaut, fit)
    assert face.rejection is None and face.fit is fit and face.key == ready._prepared_key(astronaut, fit)
    for seed, t in enumerate(targets):
        res = ready.synthesize_face(face, t, rng_seed=seed)
        one = plain.synthesize(astronaut, t, fit=fit, rng_seed=seed)
        np.testing.assert_array_equal(res.image, one.image)
        assert res.labels == one.labels
    from affectsynth.synthesizer import SynthFace

    by_hand = ready.synthesize_face(SynthFace(astronaut, fit, None, None), targets[0], rng_seed=0)  # no key: worked out
    np.testing.assert_array_equal(by_hand.image, ready.synthesize_face(face, targets[0], rng_seed=0).image)
    prepared = ready.prepare(astronaut, fit)
    torch.testing.assert_close(prepared.pixels, project_points(prepared.vertices, fit.camera), rtol=0, atol=0)


def test_a_face_keeps_the_pixels_it_was_made_from(astronaut, fit):
    """Changing the photo's array after `Synthesizer.face` cannot mix pixels and texture: the face
    renders the photo it was made from (its own read-only copy), like `synthesize` on that photo."""
    photo = astronaut.copy()
    synth = Synthesizer()
    face = synth.face(photo, fit)
    photo[:] = 255 - photo  # the caller reuses its buffer for the next photo
    res = synth.synthesize_face(face, Expression("happiness"), rng_seed=0)
    np.testing.assert_array_equal(res.image, Synthesizer().synthesize(astronaut, Expression("happiness"), fit=fit, rng_seed=0).image)
    assert not face.image.flags.writeable


def test_a_refused_face_is_refused_per_target_after_the_target_checks(astronaut, fit):
    """`face` reports the gates' verdict without raising; `synthesize_face` raises what `synthesize`
    raises, in the same order (an unknown variant first, then the refusal)."""
    from affectsynth.gates import FaceGates

    strict = Synthesizer(settings=SynthSettings(gates=FaceGates(min_face_px=10_000)))
    face = strict.face(astronaut, fit)
    assert face.rejection is not None and face.rejection.reason == "face-too-small" and face.key is None
    for call in (lambda t: strict.synthesize_face(face, t), lambda t: strict.synthesize(astronaut, t, fit=fit)):
        with pytest.raises(ValueError, match="Synthesizer.synthesize: face refused .*face-too-small"):
            call(Expression("happiness"))
        with pytest.raises(ValueError, match="variant"):
            call(Expression("happiness", variant="no-such-variant"))


def test_gates_refuse_faces_everywhere(astronaut, fit):
    """A face the gates refuse is refused by synthesize, reported by check (the reason generate writes)."""
    from affectsynth.gates import FaceGates

    strict = Synthesizer(settings=SynthSettings(gates=FaceGates(min_face_px=10_000)))
    rejection = strict.check(fit)
    assert rejection is not None and rejection.reason == "face-too-small" and "px" in rejection.detail
    with pytest.raises(ValueError, match="face-too-small"):
        strict.synthesize(astronaut, Expression("happiness"), fit=fit)
    assert Synthesizer().check(fit) is None


def test_head_rotation_is_limited_to_what_a_photo_supports(astronaut, fit):
    """Turns beyond (15, 10) degrees are refused with the reason (the photo never saw what they reveal)."""
    with pytest.raises(ValueError, match="what one photo supports"):
        SynthSettings(head_rotation_deg=(20, 5))
    with pytest.raises(ValueError, match="what one"):
        Synthesizer().synthesize(astronaut, Expression("happiness"), fit=fit, head_rotation_deg=(0.0, -12.0))
