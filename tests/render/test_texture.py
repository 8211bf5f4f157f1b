"""Tests for affectsynth.render.texture."""

from __future__ import annotations

import pytest
import torch

from affectsynth.render import ShapeError, texture
from affectsynth.render.texture import _texture_torch


def _centres(ht: int, wt: int) -> torch.Tensor:
    """uv [1, Ht, Wt, 2] at every texel centre."""
    v = (torch.arange(ht, dtype=torch.float64) + 0.5) / ht
    u = (torch.arange(wt, dtype=torch.float64) + 0.5) / wt
    gv, gu = torch.meshgrid(v, u, indexing="ij")
    return torch.stack([gu, gv], -1)[None].float()


def test_smoke():
    tex = torch.rand(1, 8, 16, 3)
    uv = torch.rand(2, 5, 7, 2)
    out = texture(tex, uv)
    assert out.shape == (2, 5, 7, 3) and out.dtype == torch.float32


@pytest.mark.parametrize("filter_mode", ["bilinear", "nearest"])
def test_texel_centres_return_texels(filter_mode):
    tex = torch.rand(1, 5, 9, 2)
    out = texture(tex, _centres(5, 9), filter_mode=filter_mode)
    torch.testing.assert_close(out, tex, rtol=0, atol=1e-6)


def test_uv_origin_is_corner_of_texel_row0_col0():
    tex = torch.arange(6.0).view(1, 2, 3, 1)
    uv = torch.tensor([[[[0.0, 0.0], [1 / 6, 0.25], [0.5, 0.75]]]])
    out = texture(tex, uv, boundary_mode="clamp")[0, 0, :, 0]
    # (0, 0) in clamp mode: the corner texel; (1/6, 1/4): centre of texel (0, 0); (1/2, 3/4): texel (1, 1).
    torch.testing.assert_close(out, torch.tensor([0.0, 0.0, 4.0]))


def test_bilinear_midpoint():
    tex = torch.tensor([[[[0.0], [1.0]], [[2.0], [3.0]]]])
    uv = torch.tensor([[[[0.5, 0.5]]]])
    torch.testing.assert_close(texture(tex, uv)[0, 0, 0, 0], torch.tensor(1.5))


@pytest.mark.parametrize(
    ("mode", "expected"),
    [("wrap", 0.5 * (0.0 + 3.0)), ("clamp", 0.0), ("zero", 0.5 * 0.0)],
)
def test_boundary_modes(mode, expected):
    tex = torch.tensor([[[[0.0], [1.0], [2.0], [3.0]]]])  # 1 x 4
    uv = torch.tensor([[[[0.0, 0.5]]]])  # halfway between texel 0 and texel -1 (= 3 when wrapping)
    torch.testing.assert_close(texture(tex, uv, boundary_mode=mode)[0, 0, 0, 0], torch.tensor(expected))


def test_wrap_is_periodic():
    tex = torch.rand(1, 6, 4, 3)
    uv = torch.rand(1, 9, 9, 2)
    torch.testing.assert_close(texture(tex, uv), texture(tex, uv + torch.tensor([2.0, -1.0])), atol=1e-5, rtol=0)


def test_zero_outside_is_zero():
    tex = torch.rand(1, 4, 4, 1) + 1
    out = texture(tex, torch.tensor([[[[1.5, 0.5], [-0.7, 0.2]]]]), boundary_mode="zero")
    assert (out == 0).all()


def test_texture_batch_broadcast():
    tex = torch.rand(2, 4, 5, 3)
    uv = torch.rand(2, 3, 3, 2)
    out = texture(tex, uv)
    for b in range(2):
        torch.testing.assert_close(out[b : b + 1], texture(tex[b : b + 1], uv[b : b + 1]), rtol=0, atol=0)


@pytest.mark.parametrize("mode", ["wrap", "clamp", "zero"])
@pytest.mark.parametrize("filter_mode", ["bilinear", "nearest"])
def test_compiled_matches_torch_path(mode, filter_mode):
    g = torch.Generator().manual_seed(1)
    tex = torch.rand(2, 7, 5, 3, generator=g, requires_grad=True)
    uv = (torch.rand(2, 11, 13, 2, generator=g) * 1.6 - 0.3).requires_grad_(True)
    out = texture(tex, uv, filter_mode=filter_mode, boundary_mode=mode)
    tex2 = tex.detach().clone().requires_grad_(True)
    uv2 = uv.detach().clone().requires_grad_(True)
    ref = _texture_torch(tex2, uv2, "linear" if filter_mode == "bilinear" else "nearest", mode)
    torch.testing.assert_close(out, ref)
    gout = torch.randn_like(out)
    out.backward(gout)
    ref.backward(gout)
    torch.testing.assert_close(tex.grad, tex2.grad, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(uv.grad, uv2.grad if uv2.grad is not None else torch.zeros_like(uv), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("mode", ["wrap", "clamp", "zero"])
def test_gradcheck(mode):
    g = torch.Generator().manual_seed(2)
    tex = torch.rand(1, 4, 3, 2, generator=g, dtype=torch.float64, requires_grad=True)
    uv = (torch.rand(2, 3, 2, 2, generator=g, dtype=torch.float64) * 1.4 - 0.2).requires_grad_(True)
    f = lambda t, u: texture(t, u, boundary_mode=mode)  # noqa: E731
    assert torch.autograd.gradcheck(f, (tex, uv), eps=1e-6, atol=1e-6)


@pytest.mark.parametrize(
    ("tex", "uv", "kwargs", "exc", "match"),
    [
        (torch.rand(4, 4, 3), torch.rand(1, 2, 2, 2), {}, ShapeError, "tex must be"),
        (torch.rand(1, 4, 4, 3), torch.rand(1, 2, 2, 3), {}, ShapeError, "uv must be"),
        (torch.rand(1, 4, 4, 3).half(), torch.rand(1, 2, 2, 2), {}, TypeError, "tex must be"),
        (torch.rand(3, 4, 4, 3), torch.rand(2, 2, 2, 2), {}, ValueError, "tex batch"),
        (torch.rand(1, 4, 4, 3), torch.rand(1, 2, 2, 2), {"filter_mode": "linear-mipmap-linear"}, ValueError, "filter_mode"),
        (torch.rand(1, 4, 4, 3), torch.rand(1, 2, 2, 2), {"boundary_mode": "mirror"}, ValueError, "boundary_mode"),
        (torch.rand(1, 4, 4, 3), torch.rand(1, 2, 2, 2), {"uv_da": torch.rand(1, 2, 2, 3)}, ShapeError, "uv_da"),
    ],
)
def test_errors(tex, uv, kwargs, exc, match):
    with pytest.raises(exc, match=match):
        texture(tex, uv, **kwargs)


def test_non_finite_uv_gives_zero():
    tex = torch.rand(1, 4, 4, 3)
    uv = torch.tensor([[[[float("nan"), 0.5], [0.5, float("inf")]]]])
    assert (texture(tex, uv) == 0).all()
