"""Tests for affectsynth.render.composite and affectsynth.render.color."""

from __future__ import annotations

import importlib

import pytest
import torch

from affectsynth.render.color import match_color
from affectsynth.render.composite import CompositeResult, CompositeSettings, composite, feather_mask
from affectsynth.render.warp import motion_field, motion_window, pixel_centres


def disc_coverage(h: int, w: int, centre: tuple[float, float], radius: float) -> torch.Tensor:
    d = (pixel_centres(h, w) - torch.tensor(centre)).norm(dim=-1)
    return (radius + 0.5 - d).clamp(0, 1)  # antialiased-like coverage


def test_outside_margin_bit_identical_uint8(make_pixel_disc):
    g = torch.Generator().manual_seed(0)
    H, W = 120, 160
    photo = torch.randint(0, 256, (H, W, 3), generator=g, dtype=torch.uint8)
    src, tri = make_pixel_disc((80.0, 60.0), 25.0)
    dst = src + torch.stack([torch.zeros(src.shape[0]), (src[:, 1] - 60).clamp(min=0) * 0.3], -1)
    win = motion_window(src, dst, (H, W), margin_px=10.0)
    flow = motion_field(src, dst, tri, (H, W), margin_px=10.0, window=win)
    x0, y0 = 50, 30
    rendered = torch.rand(64, 64, 3, generator=g)
    cov = disc_coverage(64, 64, (30.0, 32.0), 24.0)
    res = composite(photo, rendered, cov, window=(x0, y0), flow=flow, flow_window=win[:2])
    assert isinstance(res, CompositeResult)
    assert res.image.dtype == torch.uint8 and res.image.shape == photo.shape
    out, used = res.image, res.mask_used
    assert torch.equal(out[~used], photo[~used])
    assert bool((out != photo).any(-1)[used].float().mean() > 0.5)
    # nothing changes beyond the flow's margin around the moved footprint / the render window
    allowed = torch.zeros(H, W, dtype=torch.bool)
    allowed[win[1]:win[1] + win[3], win[0]:win[0] + win[2]] = True
    allowed[y0:y0 + 64, x0:x0 + 64] |= cov > 0
    assert not bool(((out != photo).any(-1) & ~allowed).any())
    # float photos too
    fphoto = photo.float() / 255
    fres = composite(fphoto, rendered, cov, window=(x0, y0), flow=flow, flow_window=win[:2])
    assert fres.image.dtype == torch.float32
    assert torch.equal(fres.image[~fres.mask_used], fphoto[~fres.mask_used])
    torch.testing.assert_close((fres.image * 255).round().to(torch.uint8), out, atol=1, rtol=0)


def test_no_flow_render_only_and_window_clipping():
    photo = torch.full((50, 60, 3), 0.2)
    rendered = torch.full((30, 30, 3), 0.8)
    cov = torch.ones(30, 30)
    # window sticks out at the top-left: only the overlap is pasted
    res = composite(photo, rendered, cov, window=(-10, -5))
    assert res.alpha.shape == (30, 30)
    assert not bool(res.mask_used[25:, :].any()) and not bool(res.mask_used[:, 20:].any())
    # a render cut by the photo border is not feathered along the cut
    torch.testing.assert_close(res.image[0, 0], torch.full((3,), 0.8))
    assert torch.equal(res.image[~res.mask_used], photo[~res.mask_used])
    # entirely outside: unchanged
    res = composite(photo, rendered, cov, window=(100, 100))
    assert torch.equal(res.image, photo) and not bool(res.mask_used.any())


def test_feathering_has_no_hard_seam():
    photo = torch.zeros(80, 80, 3)
    rendered = torch.ones(80, 80, 3)
    cov = disc_coverage(80, 80, (40.0, 40.0), 25.0)
    hard = composite(photo, rendered, cov, settings=CompositeSettings(feather_px=0.0, erode_px=0.0)).image
    soft = composite(photo, rendered, cov, settings=CompositeSettings(feather_px=6.0)).image

    def max_grad(img: torch.Tensor) -> float:
        return float(max((img[1:] - img[:-1]).abs().max(), (img[:, 1:] - img[:, :-1]).abs().max()))

    assert max_grad(hard) > 0.9
    assert max_grad(soft) < 0.35
    # alpha is exactly 0 outside the coverage and 1 deep inside
    alpha = feather_mask(cov, feather_px=6.0)
    assert bool((alpha[cov == 0] == 0).all())
    assert float(alpha[40, 40]) == 1.0


def test_color_match_inside_composite_and_alone():
    g = torch.Generator().manual_seed(1)
    ref = 0.4 + 0.1 * torch.rand(32, 32, 3, generator=g)
    rendered = (ref - 0.45) * 1.2 + 0.53  # brighter and more contrasty
    mask = torch.ones(32, 32, dtype=torch.bool)
    out = match_color(rendered, ref, mask)
    torch.testing.assert_close(out.mean((0, 1)), ref.mean((0, 1)), atol=1e-4, rtol=0)
    torch.testing.assert_close(out.std((0, 1)), ref.std((0, 1)), atol=1e-4, rtol=0)
    gain = match_color(rendered, ref, mask, mode="gain")
    torch.testing.assert_close(gain.mean((0, 1)), ref.mean((0, 1)), atol=1e-3, rtol=0)
    # clamped: a wild reference moves the mean by at most max_shift
    wild = match_color(rendered, torch.zeros_like(ref), mask, max_shift=0.1)
    assert float((wild.mean((0, 1)) - rendered.mean((0, 1))).abs().max()) <= 0.1 + 1e-5
    assert torch.equal(match_color(rendered, ref, torch.zeros(32, 32)), rendered)
    res = composite(ref, rendered, torch.ones(32, 32), settings=CompositeSettings(color_match=True, feather_px=0, erode_px=0))
    torch.testing.assert_close(res.image.mean((0, 1)), ref.mean((0, 1)), atol=1e-4, rtol=0)


def test_errors():
    photo = torch.zeros(10, 10, 3)
    with pytest.raises(ValueError, match="composite: rendered"):
        composite(photo, torch.zeros(4, 4, 4), torch.ones(4, 4))
    with pytest.raises(ValueError, match="composite: render_mask"):
        composite(photo, torch.zeros(4, 4, 3), torch.ones(4, 5))
    with pytest.raises(ValueError, match="composite: flow"):
        composite(photo, torch.zeros(4, 4, 3), torch.ones(4, 4), flow=torch.zeros(4, 4, 3))
    with pytest.raises(TypeError, match="composite: photo"):
        composite(photo.numpy(), torch.zeros(4, 4, 3), torch.ones(4, 4))
    with pytest.raises(ValueError, match="CompositeSettings"):
        CompositeSettings(feather_px=-1)
    with pytest.raises(ValueError, match="match_color: mode"):
        match_color(photo, photo, torch.ones(10, 10), mode="hist")
    with pytest.raises(ValueError, match="match_color: mask"):
        match_color(photo, photo, torch.ones(10, 9))


def test_result_to_and_detach():
    photo = torch.zeros(20, 20, 3, dtype=torch.uint8)
    res = composite(photo, torch.ones(8, 8, 3), torch.ones(8, 8), window=(6, 6))
    moved = res.to("cpu").detach()
    assert moved.image.dtype == torch.uint8 and torch.equal(moved.image, res.image)
    assert torch.equal(moved.mask_used, res.mask_used)


def test_opacity_lets_the_warped_photo_show_through():
    """Opacity 0 shows the photo (warped by the flow) under the render; 1 keeps the render."""
    photo = torch.rand(40, 40, 3)
    rendered = torch.full((20, 20, 3), 0.9)
    cov = torch.ones(20, 20)
    flow = torch.zeros(40, 40, 2)
    flow[..., 0] = 2.0  # the photo moves by two pixels everywhere
    opacity = torch.ones(20, 20)
    opacity[:, :10] = 0.0
    settings = CompositeSettings(feather_px=0.0, erode_px=0.0, warp_mode="bilinear")
    res = composite(photo, rendered, cov, window=(10, 10), flow=flow, opacity=opacity, settings=settings)
    torch.testing.assert_close(res.image[15, 12], photo[15, 14])  # left half: the warped photo
    torch.testing.assert_close(res.image[15, 25], torch.full((3,), 0.9))  # right half: the render
    with pytest.raises(ValueError, match="opacity"):
        composite(photo, rendered, cov, opacity=torch.ones(5, 5))
    with pytest.raises(ValueError, match="warp_mode"):
        CompositeSettings(warp_mode="nearest")


@pytest.mark.parametrize("warp_mode", ["bicubic", "bilinear"])
def test_compiled_paste_matches_torch_at_the_photo_border(monkeypatch, warp_mode):
    """The compiled warp and paste equals the torch path where taps clamp at every border,
    including the bottom-right pixel (where the 4-lane bicubic falls back to scalar sums) and
    windows sticking out of the photo."""
    composite_module = importlib.import_module("affectsynth.render.composite")  # the package re-exports the function

    g = torch.Generator().manual_seed(3)
    H, W = 37, 45
    photo = torch.randint(0, 256, (H, W, 3), generator=g, dtype=torch.uint8)
    flow = torch.randn(H + 6, W + 4, 2, generator=g) * 6.0
    flow[:, :, 0] += 9.0  # push many samples past the right and bottom edges
    flow[:, :, 1] += 9.0
    flow[torch.rand(H + 6, W + 4, generator=g) < 0.2] = 0.0
    rendered = torch.rand(30, 40, 3, generator=g)
    cov = disc_coverage(30, 40, (25.0, 18.0), 14.0)
    kw = dict(window=(20, 15), flow=flow, flow_window=(-3, -4), settings=CompositeSettings(warp_mode=warp_mode))
    fast = composite(photo, rendered, cov, **kw)
    with monkeypatch.context() as m:
        m.setattr(composite_module, "_takes_fast_path", lambda *_: False)
        ref = composite(photo, rendered, cov, **kw)
    assert torch.equal(fast.mask_used, ref.mask_used)
    assert torch.equal(fast.image, ref.image)


def test_compiled_paste_reads_a_photo_changed_in_place():
    """The float copy of the photo the compiled paste reuses between composites of one photo is
    keyed by content: after the photo changes in place, the result is that of the new photo."""
    g = torch.Generator().manual_seed(5)
    H, W = 40, 48
    photo = torch.randint(0, 256, (H, W, 3), generator=g, dtype=torch.uint8)
    flow = torch.randn(H, W, 2, generator=g) * 2.0
    rendered = torch.rand(20, 24, 3, generator=g)
    cov = disc_coverage(20, 24, (12.0, 10.0), 8.0)
    kw = dict(window=(10, 8), flow=flow)
    first = composite(photo, rendered, cov, **kw)
    assert torch.equal(composite(photo, rendered, cov, **kw).image, first.image)  # reused: the same
    photo[:, :, 1] = 255 - photo[:, :, 1]
    changed = composite(photo, rendered, cov, **kw)
    fresh = composite(photo.clone(), rendered, cov, **kw)
    assert not torch.equal(changed.image, first.image)
    assert torch.equal(changed.image, fresh.image)
