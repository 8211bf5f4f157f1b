"""Tests for affectsynth.render.inpaint.push_pull_fill."""

from __future__ import annotations

import pytest
import torch

from affectsynth.render import inpaint
from affectsynth.render.inpaint import push_pull_fill


def _smooth_image(h: int, w: int, c: int = 3) -> torch.Tensor:
    ys = torch.linspace(0, 1, h)[:, None, None]
    xs = torch.linspace(0, 1, w)[None, :, None]
    ch = torch.arange(c, dtype=torch.float32)[None, None, :]
    return 0.5 + 0.3 * torch.sin(3 * xs + 2 * ys + ch) * torch.cos(2 * ys - xs)


def test_known_pixels_kept_and_holes_filled_smoothly():
    img = _smooth_image(64, 80)
    w = torch.ones(64, 80)
    w[20:40, 30:55] = 0.0  # a hole
    corrupted = img.clone()
    corrupted[w == 0] = 7.0  # garbage in the hole must be ignored
    out = push_pull_fill(corrupted, w)
    assert out.shape == img.shape
    assert torch.equal(out[w == 1], img[w == 1])
    hole = w == 0
    assert float((out[hole] - img[hole]).abs().max()) < 0.1
    # smooth: no jump bigger than the image's own variation near the hole's border
    gx = (out[:, 1:] - out[:, :-1]).abs().max()
    gy = (out[1:] - out[:-1]).abs().max()
    assert float(max(gx, gy)) < 0.05


@pytest.mark.parametrize("shape", [(1, 1), (1, 7), (5, 1), (17, 31), (33, 8)])
def test_odd_sizes(shape):
    h, w = shape
    img = torch.rand(h, w, 2)
    wt = (torch.rand(h, w) > 0.5).float()
    wt.view(-1)[0] = 1.0
    out = push_pull_fill(img, wt)
    assert out.shape == img.shape
    assert torch.isfinite(out).all()
    assert torch.equal(out[wt == 1], img[wt == 1])
    assert float(out.min()) >= float(img.min()) - 1e-6 and float(out.max()) <= float(img.max()) + 1e-6


def test_single_known_pixel_spreads_everywhere():
    img = torch.zeros(16, 16, 1)
    img[3, 4] = 0.25
    w = torch.zeros(16, 16)
    w[3, 4] = 1
    out = push_pull_fill(img, w)
    torch.testing.assert_close(out, torch.full_like(out, 0.25))


def test_partial_weights_blend_and_batch():
    img = torch.stack([_smooth_image(20, 24), _smooth_image(20, 24).flip(0)])
    w = torch.rand(2, 20, 24)
    out = push_pull_fill(img, w)
    assert out.shape == img.shape
    torch.testing.assert_close(out[1], push_pull_fill(img[1], w[1]))
    # a fully known image comes back unchanged
    assert torch.equal(push_pull_fill(img, torch.ones(2, 20, 24)), img)


def test_all_unknown_gives_zero():
    out = push_pull_fill(torch.rand(8, 8, 3), torch.zeros(8, 8))
    assert torch.equal(out, torch.zeros(8, 8, 3))


def test_errors():
    with pytest.raises(ValueError, match="push_pull_fill: weight"):
        push_pull_fill(torch.rand(8, 8, 3), torch.ones(8, 7))
    with pytest.raises(ValueError, match="push_pull_fill: image"):
        push_pull_fill(torch.rand(8), torch.ones(8))
    with pytest.raises(TypeError, match="floating point"):
        push_pull_fill(torch.zeros(8, 8, 3, dtype=torch.uint8), torch.ones(8, 8))


def test_gradcheck_float64():
    img = torch.rand(5, 6, 1, dtype=torch.float64, requires_grad=True)
    w = torch.rand(5, 6, dtype=torch.float64)
    w[0, 0] = 0.0
    assert torch.autograd.gradcheck(lambda x: push_pull_fill(x, w), (img,))


@pytest.mark.parametrize("shape", [(1, 1, 1, 3), (1, 1, 7, 2), (1, 5, 1, 1), (2, 17, 31, 3), (1, 33, 8, 4), (1, 256, 256, 3)])
def test_compiled_kernel_matches_torch_path(shape):
    """The CPU inference kernel and the differentiable torch path agree to float32 rounding, and the
    kernel keeps known pixels bitwise."""
    g = torch.Generator().manual_seed(sum(shape))
    img = torch.rand(*shape, generator=g)
    w = torch.rand(*shape[:-1], generator=g)
    w = torch.where(w > 0.7, torch.ones_like(w), torch.where(w < 0.4, torch.zeros_like(w), w))
    fast = inpaint._push_pull_kernel(img, w, 1)
    torch.testing.assert_close(fast, inpaint._push_pull_torch(img, w, 1), rtol=0, atol=1e-6)
    assert torch.equal(fast[w >= 1], img[w >= 1])
    # push_pull_fill takes the kernel without autograd, the torch path with it
    assert torch.equal(push_pull_fill(img, w), fast)
    torch.testing.assert_close(push_pull_fill(img.requires_grad_(), w).detach(), fast, rtol=0, atol=1e-6)
    # filled at some pixels only: the same values, as rows in order
    wanted = torch.rand(*shape[:-1], generator=g) < 0.3
    assert torch.equal(inpaint._push_pull_kernel(img.detach(), w, 1, wanted), fast[wanted])
