"""Push-pull (pyramid) inpainting: fill low-weight pixels of an image from its known pixels.

The push phase builds a pyramid of weight-normalised 2 x 2 averages (weights summed and clamped
to 1); the pull phase goes back up, blending each level with the bilinearly upsampled coarser
level: ``out = w * level + (1 - w) * upsample(coarser_out)`` (Gortler et al. 1996, "The
Lumigraph"). Pixels of weight 1 come back unchanged; holes get a smooth fill; the cost is linear in
the pixel count.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["push_pull_fill"]


def push_pull_fill(image: Tensor, weight: Tensor, *, min_size: int = 1) -> Tensor:
    """Fill pixels with weight < 1 by push-pull interpolation of the weighted pixels.

    Args:
        image: [H, W, C] or [B, H, W, C] float image; values at weight 0 are ignored.
        weight: [H, W] or [B, H, W] confidence in [0, 1] (bool accepted): 1 = keep the pixel, 0 =
            unknown, in between = blend of the pixel and the fill.
        min_size: stop the pyramid when both sides are <= this (1 = full pyramid).

    Returns:
        Tensor shaped like ``image``, same dtype/device. Where ``weight == 1`` it equals
        ``image``; if all weights are 0 the result is 0.

    Raises:
        ValueError: shapes don't match.

    Example:
        >>> img = torch.zeros(4, 4, 1); img[0, 0] = 1.0
        >>> w = torch.zeros(4, 4); w[0, 0] = 1.0
        >>> bool((push_pull_fill(img, w) - 1.0).abs().max() < 1e-6)
        True
    """
    batched = image.ndim == 4
    if image.ndim not in (3, 4):
        raise ValueError(f"push_pull_fill: image must be [H, W, C] or [B, H, W, C], got {list(image.shape)}")
    if weight.shape != image.shape[:-1]:
        raise ValueError(
            f"push_pull_fill: weight must be {list(image.shape[:-1])} (image without C), "
            f"got {list(weight.shape)}"
        )
    if not image.is_floating_point():
        raise TypeError(f"push_pull_fill: image must be floating point, got {image.dtype}")
    img = image if batched else image[None]
    w = (weight if batched else weight[None]).to(image.dtype).clamp(0.0, 1.0)
    out = _push_pull_kernel(img, w, min_size) if _kernel_applies(img, w) else _push_pull_torch(img, w, min_size)
    return out if batched else out[0]


def _kernel_applies(image: Tensor, weight: Tensor) -> bool:
    """The compiled kernel serves CPU float32 inference; autograd and other devices take the torch path."""
    wants_grad = torch.is_grad_enabled() and (image.requires_grad or weight.requires_grad)
    return not wants_grad and image.device.type == "cpu" and image.dtype == torch.float32 and image.numel() > 0


def _push_pull_kernel(image: Tensor, weight: Tensor, min_size: int, wanted: Tensor | None = None) -> Tensor:
    """[B, H, W, C] push-pull fill by the compiled kernel (the same arithmetic as `_push_pull_torch`).

    With `wanted` ([B, H, W] bool), only those pixels are filled (the same values), returned as
    [N, C] rows in row-major order (``fill[wanted]``): the finest pull step, the costliest,
    then skips the others, and no full-size result is allocated.
    """
    from affectsynth.render._kernels.inpaint import push_pull, push_pull_at  # noqa: PLC0415  (numba import is slow)

    img = image.detach().contiguous()
    w = weight.detach().contiguous().numpy()
    if wanted is None:
        out = torch.empty_like(img)
        push_pull(img.numpy(), w, int(min_size), out.numpy())
    else:
        out = torch.empty(int(wanted.sum()), img.shape[-1], dtype=img.dtype)
        push_pull_at(img.numpy(), w, int(min_size), wanted.contiguous().numpy(), out.numpy())
    return out


def _push_pull_torch(img: Tensor, w: Tensor, min_size: int) -> Tensor:
    """[B, H, W, C] push-pull fill of [B, H, W] clamped weights in torch ops (differentiable, any device)."""
    c = img.permute(0, 3, 1, 2)  # [B, C, H, W]
    w = w[:, None]  # [B, 1, H, W]

    colors: list[Tensor] = []
    weights: list[Tensor] = []
    cur_c, cur_w = c, w
    while True:
        colors.append(cur_c)
        weights.append(cur_w)
        h, wd = cur_c.shape[-2:]
        if h <= min_size and wd <= min_size:
            break
        ph, pw = h % 2, wd % 2
        pc = F.pad(cur_c * cur_w, (0, pw, 0, ph))
        pwt = F.pad(cur_w, (0, pw, 0, ph))
        if pc.shape[-2] == 1 or pc.shape[-1] == 1:  # 1-pixel side: pool along the other only
            k = (1 if pc.shape[-2] == 1 else 2, 1 if pc.shape[-1] == 1 else 2)
        else:
            k = (2, 2)
        sum_c = F.avg_pool2d(pc, k) * (k[0] * k[1])
        sum_w = F.avg_pool2d(pwt, k) * (k[0] * k[1])
        cur_c = sum_c / sum_w.clamp_min(1e-12)
        cur_w = sum_w.clamp(max=1.0)

    out = colors[-1] * (weights[-1] > 0).to(c.dtype)
    for lc, lw in zip(reversed(colors[:-1]), reversed(weights[:-1])):
        up = F.interpolate(out, size=lc.shape[-2:], mode="bilinear", align_corners=False)
        out = lw * lc + (1.0 - lw) * up
    # known pixels exactly (the blend above is exact for w == 1 up to rounding; make it bitwise)
    out = torch.where(w >= 1.0, c, out)
    return out.permute(0, 2, 3, 1)
