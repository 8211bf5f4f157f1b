"""Second-order spherical-harmonic (SH) shading: fit 9 lighting coefficients from normals and intensities, evaluate it.

A Lambertian surface under distant light is shaded, to within a few percent, by a quadratic
polynomial of its unit normal: the 9 real spherical harmonics of degree <= 2 (Ramamoorthi &
Hanrahan 2001, "An efficient representation for irradiance environment maps"). With normals known
(from a fitted mesh) and intensities observed (pixels), the coefficients follow by linear least
squares; `sh_shading` then predicts the shading of any other normals under the same light, e.g. the
same surface in another pose or shape (ratio images: Liu, Shan & Zhang, SIGGRAPH 2001).

The basis is the real, orthonormal one, in the order
``1, y, z, x, xy, yz, 3z^2 - 1, xz, x^2 - y^2`` (times their normalisation constants). Any right-handed
frame works as long as fit and evaluation use the same one (the callers here use camera space).
"""

from __future__ import annotations

import torch
from torch import Tensor

from affectsynth.render._checks import check_shape, check_tensor

__all__ = ["SH_COEFFICIENTS", "sh_basis", "fit_sh_lighting", "sh_shading"]

#: Number of second-order SH coefficients per channel.
SH_COEFFICIENTS = 9

_FLOATS = (torch.float32, torch.float64)
_C0, _C1, _C2, _C3, _C4 = 0.282095, 0.488603, 1.092548, 0.315392, 0.546274


def sh_basis(normals: Tensor) -> Tensor:
    """The 9 real SH basis functions of degree <= 2 at unit normals.

    Args:
        normals: [..., 3] float32 or float64 unit vectors (x, y, z).

    Returns:
        [..., 9] basis values, dtype and device of `normals`.

    Raises:
        TypeError: not a float tensor.
        ValueError: last dimension is not 3.

    Example:
        >>> import torch
        >>> sh_basis(torch.tensor([[0.0, 0.0, 1.0]])).shape
        torch.Size([1, 9])
    """
    check_tensor(normals, name="normals", where="sh_basis", dtypes=_FLOATS)
    if normals.ndim < 1 or normals.shape[-1] != 3:
        raise ValueError(f"sh_basis: normals must be [..., 3], got {list(normals.shape)}")
    x, y, z = normals.unbind(-1)
    return torch.stack([
        torch.full_like(x, _C0), _C1 * y, _C1 * z, _C1 * x,
        _C2 * x * y, _C2 * y * z, _C3 * (3 * z * z - 1), _C2 * x * z, _C4 * (x * x - y * y),
    ], -1)


def fit_sh_lighting(
    normals: Tensor,
    intensities: Tensor,
    *,
    weights: Tensor | None = None,
    ridge: float = 1e-3,
    robust_iterations: int = 0,
) -> Tensor:
    """Least-squares SH lighting: coefficients ``L`` with ``intensities ~ sh_basis(normals) @ L``.

    Args:
        normals: [N, 3] float unit normals of the observed points.
        intensities: [N, C] float observed intensities (C channels; any units, e.g. [0, 1]).
        weights: optional [N] non-negative float weight per point (None = 1).
        ridge: Tikhonov weight on the degree-1 and degree-2 coefficients, relative to the mean
            squared basis value (the constant term is not damped): normals seen from one side
            (a surface seen from the front) leave some directions poorly constrained, and this
            keeps their coefficients small instead of wild.
        robust_iterations: rounds of iteratively reweighted least squares with Tukey's biweight
            (cut-off 4.685 x the robust residual scale), so that points whose intensity the
            shading cannot explain (dark markings, holes, specular spots) stop pulling the fit.

    Returns:
        [9, C] coefficients, dtype of `normals`.

    Raises:
        TypeError: non-float inputs.
        ValueError: shapes do not match, fewer than 9 points, or a negative ridge.

    Example:
        >>> import torch
        >>> n = torch.nn.functional.normalize(torch.randn(200, 3, dtype=torch.float64), dim=-1)
        >>> L = torch.randn(9, 1, dtype=torch.float64)
        >>> torch.allclose(fit_sh_lighting(n, sh_basis(n) @ L, ridge=0.0), L)
        True
    """
    where = "fit_sh_lighting"
    check_tensor(normals, name="normals", where=where, dtypes=_FLOATS)
    check_tensor(intensities, name="intensities", where=where, dtypes=_FLOATS)
    dims = check_shape(normals, "N 3", name="normals", where=where)
    check_shape(intensities, "N C", name="intensities", where=where, dims=dims)
    if weights is not None:
        check_tensor(weights, name="weights", where=where, dtypes=_FLOATS)
        check_shape(weights, "N", name="weights", where=where, dims=dims)
    if dims["N"] < SH_COEFFICIENTS:
        raise ValueError(f"{where}: need at least {SH_COEFFICIENTS} points, got {dims['N']}")
    if ridge < 0 or robust_iterations < 0:
        raise ValueError(f"{where}: ridge and robust_iterations must be >= 0, got {ridge}, {robust_iterations}")
    dtype = normals.dtype
    A = sh_basis(normals)
    b = intensities.to(dtype)
    w = torch.ones(A.shape[0], dtype=dtype, device=A.device) if weights is None else weights.to(dtype).clamp_min(0)
    damp = torch.full((SH_COEFFICIENTS,), ridge, dtype=dtype, device=A.device)
    damp[0] = 0.0
    coeffs = torch.zeros(SH_COEFFICIENTS, b.shape[1], dtype=dtype, device=A.device)
    robust = torch.ones_like(w)
    for it in range(robust_iterations + 1):
        ww = w * robust
        total = ww.sum().clamp_min(torch.finfo(dtype).tiny)
        Aw = (A * ww[:, None]).T
        AtA = Aw @ A / total
        scale = AtA.diagonal().mean()
        coeffs = torch.linalg.solve(AtA + torch.diag(damp * scale), Aw @ b / total)
        if it == robust_iterations:
            break
        r = (b - A @ coeffs).norm(dim=-1)
        sel = ww > 0
        sigma = 1.4826 * r[sel].median().clamp_min(1e-6) if bool(sel.any()) else r.new_tensor(1.0)
        u = (r / (4.685 * sigma)).clamp(max=1.0)
        robust = (1 - u * u) ** 2
    return coeffs


def sh_shading(normals: Tensor, coeffs: Tensor) -> Tensor:
    """Shading of unit normals under SH lighting.

    Args:
        normals: [..., 3] float unit normals (same frame as the fit).
        coeffs: [9, C] coefficients from `fit_sh_lighting`.

    Returns:
        [..., C] shading, dtype of `normals`.

    Raises:
        TypeError: non-float inputs.
        ValueError: `coeffs` is not [9, C].

    Example:
        >>> import torch
        >>> L = torch.zeros(9, 1); L[0, 0] = 1 / 0.282095
        >>> sh_shading(torch.tensor([[1.0, 0.0, 0.0]]), L)
        tensor([[1.]])
    """
    check_tensor(coeffs, name="coeffs", where="sh_shading", dtypes=_FLOATS)
    if coeffs.ndim != 2 or coeffs.shape[0] != SH_COEFFICIENTS:
        raise ValueError(f"sh_shading: coeffs must be [9, C], got {list(coeffs.shape)}")
    return sh_basis(normals) @ coeffs.to(normals.dtype)
