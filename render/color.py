"""Global colour matching of a rendered image to a reference image inside a mask."""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["match_color"]

_MODES = ("meanstd", "gain")


def match_color(
    rendered: Tensor,
    reference: Tensor,
    mask: Tensor,
    *,
    mode: str = "meanstd",
    max_gain: float = 1.5,
    max_shift: float = 0.15,
) -> Tensor:
    """Per-channel affine colour match of ``rendered`` to ``reference`` inside ``mask``.

    ``mode="meanstd"``: ``out = (x - mean_r) * g + mean_ref`` with ``g = std_ref / std_r``;
    ``mode="gain"``: ``out = x * mean_ref / mean_r``. Gains are clamped to
    [1 / max_gain, max_gain] and the mean shift to +-max_shift, so a bad mask can't wreck colours;
    the result is clamped to [0, 1].

    Args:
        rendered: [H, W, C] float in [0, 1], the image to adjust.
        reference: [H, W, C] float in [0, 1], same size.
        mask: [H, W] bool or float weights: the pixels whose statistics are matched.
        mode: "meanstd" or "gain".
        max_gain: largest allowed gain (>= 1).
        max_shift: largest allowed change of a channel's mean.

    Returns:
        [H, W, C] adjusted copy of ``rendered`` (all pixels, not only the masked ones); the input
        unchanged if the mask is empty.

    Raises:
        ValueError: shapes differ, unknown mode, or max_gain < 1.
    """
    if rendered.shape != reference.shape or rendered.ndim != 3:
        raise ValueError(
            f"match_color: rendered and reference must both be [H, W, C], got "
            f"{list(rendered.shape)} and {list(reference.shape)}"
        )
    if mask.shape != rendered.shape[:2]:
        raise ValueError(f"match_color: mask must be {list(rendered.shape[:2])}, got {list(mask.shape)}")
    if mode not in _MODES:
        raise ValueError(f"match_color: mode must be one of {_MODES}, got {mode!r}")
    if max_gain < 1.0:
        raise ValueError(f"match_color: max_gain must be >= 1, got {max_gain}")
    w = mask.to(rendered.dtype).clamp(0, 1)[..., None]
    total = w.sum()
    if float(total) < 1.0:
        return rendered.clone()
    ref = reference.to(rendered.dtype)
    mean_r = (rendered * w).sum((0, 1)) / total
    mean_f = (ref * w).sum((0, 1)) / total
    if mode == "gain":
        g = (mean_f / mean_r.clamp_min(1e-6)).clamp(1.0 / max_gain, max_gain)
        out = rendered * g
        shift = (out * w).sum((0, 1)) / total - mean_r
        out = out - shift + shift.clamp(-max_shift, max_shift)
    else:
        std_r = (((rendered - mean_r) ** 2 * w).sum((0, 1)) / total).sqrt()
        std_f = (((ref - mean_f) ** 2 * w).sum((0, 1)) / total).sqrt()
        g = (std_f / std_r.clamp_min(1e-6)).clamp(1.0 / max_gain, max_gain)
        g = torch.where(std_r < 1e-6, torch.ones_like(g), g)
        shift = (mean_f - mean_r).clamp(-max_shift, max_shift)
        out = (rendered - mean_r) * g + mean_r + shift
    return out.clamp(0.0, 1.0)
