"""Expression shading and wrinkles on real photos: identity where nothing changes, folds where the target makes them."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from affectsynth.blendshapes import AUs, Expression
from affectsynth.compose import render_and_composite
from affectsynth.expression_shading import ShadingSettings, apply_shading, estimate_light, shading_ratio
from affectsynth.face_render import RenderedFace
from affectsynth.render.camera import project_points
from affectsynth.synthesizer import Synthesizer, SynthSettings
from affectsynth.wrinkles import (
    FEATURES, MASKS, WrinkleFeature, feature_activation, wrinkle_height, wrinkle_lookup, wrinkle_maps,
)

NASOLABIAL = [f.name for f in FEATURES].index("nasolabial fold")
FOREHEAD = [f.name for f in FEATURES].index("forehead lines")
DIMPLE = [f.name for f in FEATURES].index("lip-corner dimple")


@pytest.fixture(scope="module")
def synth() -> Synthesizer:
    return Synthesizer()


@pytest.fixture(scope="module")
def face(synth):
    """The astronaut cropped to 256 px around her face (as `generate` synthesises), and its fit."""
    import skimage.data

    image = np.asarray(skimage.data.astronaut())
    return synth.crop_to_face(image, synth.fit(image)[0], 256)


@pytest.fixture(scope="module")
def neutral_face(synth, face):
    """The same photo with a fit that says the face is neutral (its own weights = the neutral target's)."""
    crop, fit = face
    weights = synth.target_weights(Expression("neutral"), fit)
    return crop, dataclasses.replace(fit, expression=weights)


def _window_shading(synth, crop, fit, weights, *, wrinkles=1.0):
    """(shading, rendered, skin pixels' uv) of the target weights on a prepared face."""
    prepared = synth.prepare(crop, fit)
    r = synth.renderer
    new = synth.model.reconstruct(prepared.fit, expression=weights)
    cam = prepared.fit.camera
    pix = torch.cat([project_points(v[r.drawn_vertices], cam) for v in (new, prepared.vertices)])
    window = r.window_for(pix, (cam.width, cam.height))
    rendered = r.render(new, prepared.texture, cam, window, skin_color=prepared.skin_color)
    shade = shading_ratio(prepared.light, rendered, new, prepared.fit.expression, weights, r, wrinkle_maps(r),
                          ShadingSettings(wrinkles=wrinkles))
    return shade, rendered


def _fold_and_rest(synth, rendered, feature):
    """[h, w] bool masks of skin pixels within 3 mm of a feature's furrows, and farther than 1.5 cm from any."""
    r = synth.renderer
    from affectsynth.render import interpolate

    tid = rendered.rast[0, ..., 3].long() - 1
    skin = (tid >= 0) & (r.tri_kind[tid.clamp_min(0)] == 0)
    uv, _ = interpolate(r.model.uv[None], rendered.rast, r.tri_uv)
    dist, _ = wrinkle_lookup(wrinkle_maps(r), uv[0].reshape(-1, 2))
    dist = dist.reshape(*skin.shape, -1)
    return skin & (dist[..., feature] < 0.3), skin & (dist.min(-1).values > 1.5)


def test_light_is_estimated_once_per_face_and_off_when_disabled(synth, face):
    crop, fit = face
    prepared = synth.prepare(crop, fit)
    assert prepared.light is not None and prepared.light.points > 1000
    assert prepared.light.coefficients.shape == (9, 1)
    # the astronaut is lit from the front: the shading of a normal facing the camera beats a grazing one
    from affectsynth.render import sh_shading

    facing, grazing = torch.tensor([[0.0, 0.0, -1.0]]), torch.tensor([[0.9, 0.0, -0.436]])
    assert float(sh_shading(facing, prepared.light.coefficients)) > float(sh_shading(grazing, prepared.light.coefficients))
    off = Synthesizer(settings=SynthSettings(expression_shading=False))
    assert off.prepare(crop, fit).light is None


def test_neutral_on_the_source_geometry_is_the_identity(synth, face, neutral_face):
    crop, fit = neutral_face
    on = synth.synthesize(crop, Expression("neutral"), fit=fit).image
    off = Synthesizer(settings=SynthSettings(expression_shading=False)).synthesize(crop, Expression("neutral"), fit=fit).image
    np.testing.assert_array_equal(on, off)
    # and the ratio of the photo's own fitted weights (a smiling face) is exactly 1
    crop, fit = face
    shade, _ = _window_shading(synth, crop, fit, synth.prepare(crop, fit).fit.expression)
    assert bool((shade.ratio == 1).all()) and shade.lift is None


def test_smile_darkens_the_nasolabial_folds_and_leaves_the_rest(synth, neutral_face):
    crop, fit = neutral_face
    happy = synth.target_weights(Expression("happiness", 1.0), fit)
    shade, rendered = _window_shading(synth, crop, fit, happy)
    fold, rest = _fold_and_rest(synth, rendered, NASOLABIAL)
    assert fold.sum() > 100 and rest.sum() > 1000
    assert float(shade.ratio[fold].mean()) < 0.92
    assert abs(float(shade.ratio[rest].mean()) - 1.0) < 0.03
    # in the output image: the fold region is darker with the shading than without
    on = synth.synthesize(crop, Expression("happiness", 1.0), fit=fit).image
    off = Synthesizer(settings=SynthSettings(expression_shading=False)).synthesize(crop, Expression("happiness", 1.0), fit=fit).image
    x0, y0, w, h = rendered.window
    luma = torch.tensor([0.299, 0.587, 0.114])
    on_l = torch.from_numpy(on[y0:y0 + h, x0:x0 + w]).float() @ luma
    off_l = torch.from_numpy(off[y0:y0 + h, x0:x0 + w]).float() @ luma
    assert float((off_l - on_l)[fold].mean()) > 8.0


def test_frown_draws_forehead_lines_only_where_brows_rise(synth, neutral_face):
    crop, fit = neutral_face
    weights = synth.target_weights(AUs({"AU1": 1.0, "AU2": 1.0}), fit)
    shade, rendered = _window_shading(synth, crop, fit, weights)
    fold, rest = _fold_and_rest(synth, rendered, FOREHEAD)
    assert float(shade.ratio[fold].min()) < 0.9  # lines at least 10 % darker than the skin around
    assert abs(float(shade.ratio[rest].mean()) - 1.0) < 0.03


def test_contempt_tucks_a_dimple_into_its_own_lip_corner_only(synth, neutral_face):
    """The unilateral dimpler (contempt "right": the subject's right) darkens the crease outside
    that lip corner; the other corner keeps its shading."""
    crop, fit = neutral_face
    shade, rendered = _window_shading(synth, crop, fit, synth.target_weights(Expression("contempt", 1.0, "right"), fit))
    fold, _ = _fold_and_rest(synth, rendered, DIMPLE)
    from affectsynth.render import interpolate

    uv, _ = interpolate(synth.renderer.model.uv[None], rendered.rast, synth.renderer.tri_uv)
    _, masks = wrinkle_lookup(wrinkle_maps(synth.renderer), uv[0].reshape(-1, 2))
    left = masks.reshape(*fold.shape, -1)[..., MASKS.index("left")] > 0.5
    assert int((fold & ~left).sum()) > 20 and int((fold & left).sum()) > 20
    assert float(shade.ratio[fold & ~left].min()) < 0.85
    assert float(shade.ratio[fold & left].min()) > 0.97


def test_fold_depth_grows_with_intensity_and_wrinkle_strength(synth, neutral_face):
    crop, fit = neutral_face
    darkening = []
    for s in (0.25, 0.5, 1.0):
        shade, rendered = _window_shading(synth, crop, fit, synth.target_weights(Expression("happiness", s), fit))
        fold, _ = _fold_and_rest(synth, rendered, NASOLABIAL)
        darkening.append(1 - float(shade.ratio[fold].mean()))
    assert darkening[0] < darkening[1] < darkening[2]
    happy = synth.target_weights(Expression("happiness", 1.0), fit)
    by_strength = []
    for k in (0.0, 0.5, 1.0):
        shade, rendered = _window_shading(synth, crop, fit, happy, wrinkles=k)
        fold, _ = _fold_and_rest(synth, rendered, NASOLABIAL)
        by_strength.append(1 - float(shade.ratio[fold].mean()))
    assert by_strength[0] < by_strength[1] < by_strength[2]


def test_smiling_source_loses_its_folds_when_made_neutral(synth, face):
    crop, fit = face  # the astronaut smiles: fitted mouthSmile about 1
    prepared = synth.prepare(crop, fit)
    neutral = synth.target_weights(Expression("neutral"), prepared.fit)
    shade, rendered = _window_shading(synth, crop, fit, neutral)
    # with the image given, the photo's creases near the fitted folds are lifted
    x0, y0, w, h = rendered.window
    img = torch.from_numpy(np.ascontiguousarray(crop[y0:y0 + h, x0:x0 + w]))
    r = synth.renderer
    new = synth.model.reconstruct(prepared.fit, expression=neutral)
    lifted = shading_ratio(prepared.light, rendered, new, prepared.fit.expression, neutral, r, wrinkle_maps(r), image=img)
    fold, rest = _fold_and_rest(synth, rendered, NASOLABIAL)
    assert lifted.lift is not None and float(lifted.lift[fold].max()) > 0.5
    assert float(lifted.lift[rest].max()) < 0.01
    out = apply_shading(torch.from_numpy(np.array(crop)), lifted, rendered.window)[y0:y0 + h, x0:x0 + w].float()
    luma = torch.tensor([0.299, 0.587, 0.114])
    crease = fold & (lifted.lift > 0.5)
    assert float((out @ luma - img.float() @ luma)[crease].mean()) > 5.0


def test_settings_off_gives_the_unshaded_composite(synth, face):
    crop, fit = face
    off = Synthesizer(settings=SynthSettings(expression_shading=False))
    target = Expression("anger", 1.0)
    got = off.synthesize(crop, target, fit=fit).image
    prepared = off.prepare(crop, fit)
    new = off.model.reconstruct(prepared.fit, expression=off.target_weights(target, prepared.fit))
    plain = render_and_composite(prepared, new, off.renderer, off.settings.compose, shading=None, reuse_photo=True)
    np.testing.assert_array_equal(got, plain.cpu().numpy())
    assert not np.array_equal(got, synth.synthesize(crop, target, fit=fit).image)
    no_wrinkles = Synthesizer(settings=SynthSettings(wrinkles=0.0)).synthesize(crop, target, fit=fit).image
    assert not np.array_equal(no_wrinkles, synth.synthesize(crop, target, fit=fit).image)


def test_grey_photo_stays_grey(synth, face):
    crop, fit = face
    grey = np.repeat(crop.mean(-1, keepdims=True).round().astype(np.uint8), 3, -1)
    out = synth.synthesize(grey, Expression("disgust", 1.0), fit=fit).image
    assert int(np.abs(out[..., 0].astype(int) - out[..., 2].astype(int)).max()) <= 1


def test_small_faces_get_the_furrows_shadow_spread_not_lost():
    d = torch.linspace(-2, 2, 4001)[:, None].expand(-1, len(FEATURES)).contiguous()
    act = torch.zeros_like(d)
    act[:, FOREHEAD] = 1.0
    r = Synthesizer().renderer
    maps = wrinkle_maps(r)
    big = wrinkle_height(maps, d, act, px_per_cm=40.0)
    small = wrinkle_height(maps, d, act, px_per_cm=3.0)
    step = 4 / 4000
    assert float(small.min()) > 0.5 * float(big.min())  # shallower ...
    torch.testing.assert_close(small.sum() * step, big.sum() * step, rtol=0.02, atol=0)  # ... same total shadow


def test_wrinkle_maps_cover_the_skin_with_sided_masks():
    r = Synthesizer().renderer
    maps = wrinkle_maps(r)
    F, M = len(FEATURES), len(MASKS)
    assert maps.texture.shape[-1] == F + M
    masks = maps.texture[..., F:]
    seen = maps.texture[..., 0] < 100
    torch.testing.assert_close(masks[seen][:, 0] + masks[seen][:, 1], torch.ones(int(seen.sum())))
    names = r.model.expression_names
    w = torch.zeros(len(names))
    w[names.index("browDown_L")] = 1.0
    act = feature_activation(maps, masks[seen], w)
    left = masks[seen][:, 0] > 0.99
    glabella = [f.name for f in FEATURES].index("glabellar furrows")
    assert float(act[left, glabella].min()) > 0.95 and float(act[~left & (masks[seen][:, 1] > 0.99), glabella].max()) < 0.05
    assert float(act[:, [i for i in range(F) if i != glabella]].abs().max()) == 0.0


def test_errors_name_the_problem(synth, face):
    crop, fit = face
    prepared = synth.prepare(crop, fit)
    bare = RenderedFace(torch.zeros(4, 4, 3), torch.zeros(4, 4), (0, 0, 4, 4))
    with pytest.raises(ValueError, match="RenderedFace.rast is None"):
        shading_ratio(prepared.light, bare, prepared.vertices, prepared.fit.expression, prepared.fit.expression,
                      synth.renderer, None)
    with pytest.raises(ValueError, match="min_ratio"):
        ShadingSettings(min_ratio=1.5)
    with pytest.raises(ValueError, match="wrinkles"):
        SynthSettings(wrinkles=-1.0)
    with pytest.raises(ValueError, match="lift_dark"):
        WrinkleFeature("crease", depth_cm=0.0, width_cm=0.1, curves=(((0.0, 0.0), (1.0, 0.0)),), drivers=(), lift_dark=1.5)
    light = estimate_light(prepared.photo, prepared.vertices, synth.renderer, prepared.fit.camera)
    torch.testing.assert_close(light.coefficients, prepared.light.coefficients)


def _zone_luma(synth, fit, weights, image, zone):
    """(mean luma of the skin pixels whose neutral-face point (x, y cm) lies in ``zone``
    (|x| < zone[0], zone[1] < y < zone[2]), 10th percentile of it; both over the median luma of
    the cheeks) in a synthesised image of the face with ``weights``."""
    from affectsynth.render import interpolate

    r = synth.renderer
    cam = fit.camera
    raster = r.rasterize_window(synth.model.reconstruct(fit, expression=weights), cam, (0, 0, cam.width, cam.height))
    pos = interpolate(synth.model.neutral[None], raster.rast, r.tri)[0][0]
    skin = raster.kind == 0
    luma = torch.from_numpy(np.array(image)).float() @ torch.tensor([0.299, 0.587, 0.114])
    x, y = pos[..., 0].abs(), pos[..., 1]
    inside = skin & (x < zone[0]) & (y > zone[1]) & (y < zone[2])
    cheeks = skin & (x > 2.0) & (x < 4.0) & (y > -2.5) & (y < 0.5)
    cheek = float(luma[cheeks].median())
    return float(luma[inside].mean()) / cheek, float(luma[inside].quantile(0.1)) / cheek


#: The philtrum below the nose on the neutral face (cm): where a broad smile's subnasal crease lands
#: when the lip relaxes.
PHILTRUM = (0.5, -2.0, -1.2)


@pytest.fixture(scope="module")
def broad_smile(synth, dev_photos):
    """Tom Cruise smiling broadly (teeth showing, the philtrum bunched up under the nose), as
    `generate` crops him, and his fit."""
    from PIL import Image

    image = np.asarray(Image.open(dev_photos / "Tom_Cruise_avp_2014_4.jpg").convert("RGB"))
    return synth.crop_to_face(image, synth.fit(image, max_faces=1)[0], 256)


@pytest.mark.parametrize("name", ["neutral", "sadness", "surprise"])
def test_relaxed_broad_smile_leaves_no_dark_patch_under_the_nose(synth, broad_smile, name):
    """Relaxing the upper lip stretches the strip of photo under the nose (near-black: the crease a
    broad smile bunches up there) over the philtrum: its crease is brightened to a soft shadow, not
    spread into a dark V (before the subnasal crease was lifted the philtrum measured 0.33-0.35 of
    the cheeks' luminance and its darkest tenth 0.09-0.10; now 0.47-0.49 and 0.37-0.39)."""
    crop, fit = broad_smile
    weights = synth.target_weights(Expression(name, 1.0), fit)
    out = synth.synthesize(crop, Expression(name, 1.0), fit=fit).image
    mean, dark = _zone_luma(synth, fit, weights, out, PHILTRUM)
    assert mean > 0.45 and dark > 0.2, (mean, dark)
    # the nose's own shape stays: the nostrils keep their darkness
    src_mean, _ = _zone_luma(synth, fit, fit.expression, crop, (1.2, -0.6, 0.0))
    got_mean, _ = _zone_luma(synth, fit, weights, out, (1.2, -0.6, 0.0))
    assert abs(got_mean - src_mean) < 0.05


def test_crease_lift_keeps_a_moustache(synth, dev_photos):
    """A smiling source with a moustache (2008_001322, smiling less broadly): made neutral, its
    philtrum keeps the moustache's darkness (hair is no crease)."""
    from PIL import Image

    image = np.asarray(Image.open(dev_photos / "2008_001322.jpg").convert("RGB"))
    crop, fit = synth.crop_to_face(image, synth.fit(image, max_faces=1)[0], 256)
    src_mean, src_dark = _zone_luma(synth, fit, fit.expression, crop, PHILTRUM)
    weights = synth.target_weights(Expression("neutral"), fit)
    mean, dark = _zone_luma(synth, fit, weights, synth.synthesize(crop, Expression("neutral"), fit=fit).image, PHILTRUM)
    assert src_mean < 0.75  # the moustache
    assert abs(mean - src_mean) < 0.05 and abs(dark - src_dark) < 0.05, (src_mean, mean, src_dark, dark)


def test_compiled_crease_lift_matches_torch_path(synth, broad_smile, monkeypatch):
    """The crease's lift and its surroundings (compiled kernels) against the torch ops, on a target
    that lifts it."""
    from affectsynth import compose

    import affectsynth.expression_shading as shading_module

    crop, fit = broad_smile
    calls = []
    original = compose.shading_ratio

    def record(*a, **k):
        calls.append((a, k))
        return original(*a, **k)

    monkeypatch.setattr(compose, "shading_ratio", record)
    synth.synthesize(crop, Expression("neutral", 1.0), fit=fit)
    monkeypatch.undo()
    (a, k), = calls
    fast = shading_ratio(*a, **k)
    with monkeypatch.context() as m:
        m.setattr(shading_module, "_compiled_applies", lambda *_: False)
        ref = shading_ratio(*a, **k)
    assert fast.lift is not None and ref.lift is not None
    assert float((fast.lift - ref.lift).abs().max()) < 1e-4
    assert float((fast.smooth - ref.smooth).abs().max()) < 1e-4
    assert float(fast.lift.max()) > 0.5  # the near-black crease is brightened most of the way
