"""Spherical-harmonic lighting: the fit recovers known coefficients, evaluation matches the basis, errors name the input."""

from __future__ import annotations

import math

import pytest
import torch

from affectsynth.render import ShapeError, fit_sh_lighting, sh_basis, sh_shading


def _hemisphere(n: int, *, seed: int = 0, dtype=torch.float64) -> torch.Tensor:
    """Unit normals pointing towards a camera on -z (what a fitted surface seen from the front gives)."""
    g = torch.Generator().manual_seed(seed)
    v = torch.randn(n, 3, generator=g, dtype=dtype)
    v[:, 2] = -v[:, 2].abs()
    return torch.nn.functional.normalize(v, dim=-1)


def test_basis_is_orthonormal_on_the_sphere() -> None:
    g = torch.Generator().manual_seed(1)
    n = torch.nn.functional.normalize(torch.randn(200_000, 3, generator=g, dtype=torch.float64), dim=-1)
    Y = sh_basis(n)
    gram = (Y.T @ Y) / n.shape[0] * 4 * math.pi
    torch.testing.assert_close(gram, torch.eye(9, dtype=torch.float64), atol=0.03, rtol=0)


def test_fit_recovers_known_coefficients_from_a_hemisphere() -> None:
    normals = _hemisphere(3000)
    g = torch.Generator().manual_seed(2)
    truth = torch.randn(9, 3, generator=g, dtype=torch.float64)
    values = sh_shading(normals, truth)
    got = fit_sh_lighting(normals, values, ridge=0.0)
    torch.testing.assert_close(got, truth, atol=1e-8, rtol=0)


def test_robust_fit_ignores_dark_outliers_that_plain_least_squares_follows() -> None:
    normals = _hemisphere(4000, seed=3)
    truth = torch.zeros(9, 1, dtype=torch.float64)
    truth[0, 0], truth[2, 0], truth[3, 0] = 2.0, -0.6, 0.3  # frontal light from the camera's side, a bit from +x
    values = sh_shading(normals, truth)
    dark = torch.arange(4000) % 7 == 0  # one point in 7 is a dark marking the shading cannot explain
    values[dark] *= 0.2
    plain = fit_sh_lighting(normals, values, ridge=0.0)
    robust = fit_sh_lighting(normals, values, ridge=0.0, robust_iterations=4)
    err_plain = (sh_shading(normals, plain) - sh_shading(normals, truth)).abs().mean()
    err_robust = (sh_shading(normals, robust) - sh_shading(normals, truth)).abs().mean()
    assert err_robust < 0.1 * err_plain
    assert err_robust < 0.01


def test_weights_select_points_and_float32_keeps_dtype() -> None:
    normals = _hemisphere(500, seed=4, dtype=torch.float32)
    a = torch.randn(9, 1, generator=torch.Generator().manual_seed(5))
    b = torch.randn(9, 1, generator=torch.Generator().manual_seed(6))
    values = torch.cat([sh_shading(normals[:250], a), sh_shading(normals[250:], b)])
    w = torch.cat([torch.ones(250), torch.zeros(250)])
    got = fit_sh_lighting(normals, values, weights=w, ridge=0.0)
    assert got.dtype == torch.float32 and got.shape == (9, 1)
    torch.testing.assert_close(sh_shading(normals[:250], got), sh_shading(normals[:250], a), atol=2e-3, rtol=0)


def test_ridge_keeps_unconstrained_coefficients_small() -> None:
    # all normals in a narrow cone: most higher-order directions are unobserved
    normals = torch.nn.functional.normalize(_hemisphere(500, seed=7) * torch.tensor([0.05, 0.05, 1.0], dtype=torch.float64), dim=-1)
    values = 1.0 + 0.01 * torch.randn(500, 1, generator=torch.Generator().manual_seed(8), dtype=torch.float64)
    damped = fit_sh_lighting(normals, values, ridge=1e-2)
    assert damped[1:].abs().max() < 2.0
    torch.testing.assert_close(sh_shading(normals, damped).mean(), values.mean(), atol=0.01, rtol=0)


def test_errors_name_the_function_and_the_input() -> None:
    n = _hemisphere(20)
    with pytest.raises(ShapeError, match="fit_sh_lighting: intensities"):
        fit_sh_lighting(n, torch.zeros(19, 1, dtype=torch.float64))
    with pytest.raises(ValueError, match="at least 9 points"):
        fit_sh_lighting(n[:5], torch.zeros(5, 1, dtype=torch.float64))
    with pytest.raises(TypeError, match="normals"):
        fit_sh_lighting(n.to(torch.int64), torch.zeros(20, 1))
    with pytest.raises(ValueError, match="ridge"):
        fit_sh_lighting(n, torch.zeros(20, 1, dtype=torch.float64), ridge=-1.0)
    with pytest.raises(ValueError, match=r"sh_shading: coeffs must be \[9, C\]"):
        sh_shading(n, torch.zeros(4, 1, dtype=torch.float64))
    with pytest.raises(ValueError, match=r"sh_basis: normals must be \[\.\.\., 3\]"):
        sh_basis(torch.zeros(4, 2))
