"""Seamless composite of a rendered window over a (flow-warped) photo, exact outside the change.

Pipeline: warp the photo by a backward flow (`affectsynth.render.warp`), optionally match the
render's colours to what it covers, and blend the render in with a feathered alpha: the coverage
(after antialias), eroded by ``erode_px`` and ramped smoothly to 1 over ``feather_px`` pixels
inside the silhouette, so it is exactly 0 outside the coverage and the seam has no hard edge.
Every pixel outside ``mask_used`` (where the flow is 0 and alpha is 0) is copied from the input
bit for bit, whatever the dtype.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch
from torch import Tensor

from affectsynth.render.color import match_color
from affectsynth.render.warp import pixel_centres, sample_image

__all__ = ["CompositeSettings", "CompositeResult", "composite", "feather_mask"]


@dataclass(frozen=True)
class CompositeSettings:
    """Defaults of `composite` (one source of truth).

    Attributes:
        feather_px: width of the alpha ramp inside the silhouette, pixels (>= 0; 0 = hard edge).
        erode_px: the ramp starts this far inside the coverage, pixels (>= 0).
        coverage_threshold: coverage above which a pixel counts as inside for the distance.
        color_match: match the render's per-channel mean/std to the warped photo under it.
        warp_mode: interpolation of the warped photo, "bicubic" (keeps fine texture when pixels
            move by fractions of a pixel) or "bilinear".
    """

    feather_px: float = 4.0
    erode_px: float = 1.0
    coverage_threshold: float = 0.5
    color_match: bool = False
    warp_mode: str = "bicubic"

    def __post_init__(self) -> None:
        if self.feather_px < 0 or self.erode_px < 0:
            raise ValueError(
                f"CompositeSettings: feather_px and erode_px must be >= 0, got "
                f"{self.feather_px}, {self.erode_px}"
            )
        if self.warp_mode not in ("bilinear", "bicubic"):
            raise ValueError(f"CompositeSettings: warp_mode must be 'bilinear' or 'bicubic', got {self.warp_mode!r}")
        if not 0.0 <= self.coverage_threshold < 1.0:
            raise ValueError(
                f"CompositeSettings: coverage_threshold must be in [0, 1), got {self.coverage_threshold}"
            )


@dataclass(frozen=True)
class CompositeResult:
    """Output of `composite`.

    Attributes:
        image: [H, W, C] the composite, dtype/device of the photo.
        mask_used: [H, W] bool, True where the output may differ from the photo (non-zero flow or
            alpha > 0); everywhere else the photo is copied exactly.
        alpha: [h, w] float32 blend weight of the render inside its window.
    """

    image: Tensor
    mask_used: Tensor
    alpha: Tensor

    def to(self, *args: Any, **kwargs: Any) -> CompositeResult:
        """Move all tensors (``Tensor.to`` arguments); the image keeps its dtype."""
        dev = torch.empty(0).to(*args, **kwargs).device
        return CompositeResult(self.image.to(dev), self.mask_used.to(dev), self.alpha.to(dev))

    def detach(self) -> CompositeResult:
        """Copy without autograd history."""
        return replace(self, image=self.image.detach(), alpha=self.alpha.detach())


def feather_mask(coverage: Tensor, *, feather_px: float = 4.0, erode_px: float = 1.0, threshold: float = 0.5) -> Tensor:
    """Feathered alpha from a coverage mask: 0 outside, smooth ramp inside the silhouette.

    ``alpha = coverage * smoothstep(clamp((d - erode_px) / feather_px, 0, 1))``, ``d`` = distance
    (pixels) from a pixel centre to the nearest pixel outside ``coverage > threshold``.

    Args:
        coverage: [h, w] float coverage in [0, 1] (e.g. antialiased mask) or bool.
        feather_px: ramp width, pixels.
        erode_px: ramp offset into the silhouette, pixels.
        threshold: inside/outside threshold on the coverage.

    Returns:
        [h, w] float32 alpha in [0, 1], zero wherever ``coverage == 0``.
    """
    if coverage.ndim != 2:
        raise ValueError(f"feather_mask: coverage must be [h, w], got {list(coverage.shape)}")
    cov = coverage.float().clamp(0, 1)
    inside = (cov > threshold).cpu().numpy()
    if not inside.any():
        return torch.zeros_like(cov)
    # distance from each inside pixel to the nearest outside pixel, with the frame counted as
    # inside (a render window cut by the photo border should not fade at the cut)
    from scipy.ndimage import distance_transform_edt  # noqa: PLC0415  (lazy: ~0.15 s at import; the compiled path needs none)

    d = distance_transform_edt(inside)
    if feather_px > 0:
        t = np.clip((d - 0.5 - erode_px) / feather_px, 0.0, 1.0)
    else:
        t = (d - 0.5 - erode_px >= 0).astype(np.float64)
    ramp = torch.from_numpy((t * t * (3.0 - 2.0 * t)).astype(np.float32)).to(cov.device)
    return cov * ramp


def _to_float(x: Tensor) -> Tensor:
    if x.dtype == torch.uint8:
        return x.float() / 255.0
    return x.float() if x.dtype != torch.float64 else x


class _FloatPhotoMemo:
    """The last uint8 photo's `_to_float` (float32 / 255), reused while the photo is unchanged.

    Several composites of one photo (several renders pasted into it) each converted the whole photo
    again (~0.14 ms for a 256 px crop); comparing it with a copy of the last one costs a fifth
    of that. Content-keyed, so a photo changed in place is converted afresh; only photos up to
    `MAX_BYTES` are kept (a full-resolution photo's float copy is large and converts rarely).
    """

    MAX_BYTES = 1 << 22

    def __init__(self) -> None:
        self._last: tuple[np.ndarray, Tensor] | None = None

    def __call__(self, photo: Tensor) -> Tensor:
        """[H, W, C] float32 contiguous ``photo / 255`` of a CPU uint8 photo (read-only: do not write)."""
        if photo.numel() > self.MAX_BYTES:
            return _to_float(photo).contiguous()
        arr = photo.detach().numpy()
        last = self._last
        if last is not None and last[0].shape == arr.shape and np.array_equal(last[0], arr):
            return last[1]
        converted = _to_float(photo).contiguous()
        self._last = (arr.copy(), converted)
        return converted


_float_photo = _FloatPhotoMemo()


def _from_float(x: Tensor, dtype: torch.dtype) -> Tensor:
    if dtype == torch.uint8:
        return (x * 255.0).round().clamp(0, 255).to(torch.uint8)
    return x.to(dtype)


def _opaque(alpha: Tensor, opacity: Tensor | None) -> Tensor:
    """The feathered alpha times the opacity clamped to [0, 1] (None: alpha itself)."""
    if opacity is None:
        return alpha
    return alpha * opacity.to(device=alpha.device, dtype=alpha.dtype).clamp(0.0, 1.0)


def _takes_fast_path(photo: Tensor, rendered: Tensor, render_mask: Tensor, flow: Tensor | None,
                     opacity: Tensor | None, s: CompositeSettings) -> bool:
    """Whether `composite` runs the compiled CPU kernels: an RGB uint8 photo (no gradient reaches it
    anyway), every tensor on the CPU, none that requires grad, and no colour match."""
    tensors = [t for t in (photo, rendered, render_mask, flow, opacity) if t is not None]
    return (photo.dtype == torch.uint8 and photo.shape[-1] == 3 and not s.color_match and rendered.is_floating_point()
            and all(t.device.type == "cpu" and not t.requires_grad for t in tensors))


def _feather_alpha_cpu(render_mask: Tensor, opacity: Tensor | None, s: CompositeSettings) -> Tensor:
    """`feather_mask` times the clamped opacity, by the compiled kernel (CPU, no grad)."""
    from affectsynth.render._kernels.composite import feather_alpha  # noqa: PLC0415  (numba import is slow)

    cov = render_mask.detach().to(torch.float32).contiguous()
    op = cov if opacity is None else opacity.detach().to(torch.float32).contiguous()
    alpha = torch.empty(cov.shape, dtype=torch.float32)
    if not feather_alpha(cov.numpy(), op.numpy(), opacity is not None, float(s.feather_px), float(s.erode_px),
                         np.float32(s.coverage_threshold), alpha.numpy()):
        # no pixel outside the coverage: keep scipy's convention for a mask without background
        return _opaque(feather_mask(render_mask, feather_px=s.feather_px, erode_px=s.erode_px,
                                    threshold=s.coverage_threshold), opacity)
    return alpha


def _warp_paste_cpu(photo: Tensor, box: tuple[int, int, int, int], flow: Tensor | None, flow_window: tuple[int, int],
                    rendered: Tensor, alpha: Tensor, corner: tuple[int, int], s: CompositeSettings,
                    out: Tensor, used: Tensor) -> None:
    """The warp and blend of `composite` over ``box`` (X0, Y0, X1, Y1) of a uint8 photo by the
    compiled kernel, in place into ``out`` (a copy of the photo) and ``used``."""
    from affectsynth.render._kernels.composite import warp_paste  # noqa: PLC0415  (numba import is slow)

    fl = torch.zeros(1, 1, 2) if flow is None else flow.detach().to(torch.float32).contiguous()
    fx0, fy0 = (0, 0) if flow is None else (int(flow_window[0]), int(flow_window[1]))
    warp_paste(_float_photo(photo).numpy(), np.asarray(box, np.int64), fl.numpy(), fx0, fy0,
               rendered.detach().to(torch.float32).contiguous().numpy(), alpha.contiguous().numpy(),
               int(corner[0]), int(corner[1]), s.warp_mode == "bicubic", out.numpy(), used.numpy())


def composite(
    photo: Tensor,
    rendered: Tensor,
    render_mask: Tensor,
    *,
    window: tuple[int, int] = (0, 0),
    flow: Tensor | None = None,
    flow_window: tuple[int, int] = (0, 0),
    opacity: Tensor | None = None,
    settings: CompositeSettings | None = None,
) -> CompositeResult:
    """Paste a rendered window over the photo, warping the photo around it by a flow.

    Args:
        photo: [H, W, C] uint8, or float in [0, 1].
        rendered: [h, w, C] float in [0, 1], rendered for the photo window at ``window``.
        render_mask: [h, w] coverage in [0, 1] (after antialias) or bool.
        window: (x0, y0) photo pixel of the render's top-left corner; the window may stick out of
            the photo (that part is dropped).
        flow: optional [fh, fw, 2] backward flow in pixels (`affectsynth.render.warp.motion_field`)
            whose top-left pixel is photo pixel ``flow_window``; the photo is warped by it
            (samples may come from anywhere in the photo).
        flow_window: (x0, y0) of the flow in the photo.
        opacity: optional [h, w] in [0, 1] multiplying the render's feathered alpha: 0 where the
            (warped) photo itself should show, e.g. where it is as good as the render and sharper.
        settings: `CompositeSettings` (feathering, colour match); None = defaults.

    Returns:
        `CompositeResult` with the image in the photo's dtype, size and device.

    Raises:
        ValueError: shapes or channel counts don't match.
        TypeError: non-tensor inputs.
    """
    s = settings or CompositeSettings()
    for name, t in (("photo", photo), ("rendered", rendered), ("render_mask", render_mask)):
        if not isinstance(t, Tensor):
            raise TypeError(f"composite: {name} must be a torch.Tensor, got {type(t).__name__}")
    if photo.ndim != 3:
        raise ValueError(f"composite: photo must be [H, W, C], got {list(photo.shape)}")
    if rendered.ndim != 3 or rendered.shape[-1] != photo.shape[-1]:
        raise ValueError(
            f"composite: rendered must be [h, w, {photo.shape[-1]}] (photo channels), got {list(rendered.shape)}"
        )
    if render_mask.shape != rendered.shape[:2]:
        raise ValueError(f"composite: render_mask must be {list(rendered.shape[:2])}, got {list(render_mask.shape)}")
    if opacity is not None and opacity.shape != rendered.shape[:2]:
        raise ValueError(f"composite: opacity must be {list(rendered.shape[:2])}, got {list(opacity.shape)}")
    if flow is not None and (flow.ndim != 3 or flow.shape[-1] != 2):
        raise ValueError(f"composite: flow must be [fh, fw, 2], got {list(flow.shape)}")
    H, W, C = photo.shape
    device = photo.device
    out = photo.clone(memory_format=torch.contiguous_format)
    used = torch.zeros(H, W, dtype=torch.bool, device=device)

    # region that may change: render window and flow window, clipped to the photo
    boxes = []
    rx0, ry0 = int(window[0]), int(window[1])
    rh, rw = rendered.shape[:2]
    boxes.append((rx0, ry0, rx0 + rw, ry0 + rh))
    if flow is not None:
        fx0, fy0 = int(flow_window[0]), int(flow_window[1])
        boxes.append((fx0, fy0, fx0 + flow.shape[1], fy0 + flow.shape[0]))
    X0 = max(0, min(b[0] for b in boxes))
    Y0 = max(0, min(b[1] for b in boxes))
    X1 = min(W, max(b[2] for b in boxes))
    Y1 = min(H, max(b[3] for b in boxes))
    if _takes_fast_path(photo, rendered, render_mask, flow, opacity, s):
        alpha_full = _feather_alpha_cpu(render_mask, opacity, s)
        if X1 > X0 and Y1 > Y0:
            _warp_paste_cpu(photo, (X0, Y0, X1, Y1), flow, flow_window, rendered, alpha_full, (rx0, ry0), s, out, used)
        return CompositeResult(out, used, alpha_full)
    alpha_full = _opaque(feather_mask(
        render_mask, feather_px=s.feather_px, erode_px=s.erode_px, threshold=s.coverage_threshold
    ).to(device), opacity)
    if X1 <= X0 or Y1 <= Y0:
        return CompositeResult(out, used, alpha_full)

    orig = photo[Y0:Y1, X0:X1]
    base = _to_float(orig)
    moved = torch.zeros(Y1 - Y0, X1 - X0, dtype=torch.bool, device=device)
    if flow is not None:
        fl = torch.zeros(Y1 - Y0, X1 - X0, 2, dtype=torch.float32, device=device)
        sx0, sy0 = max(fx0, X0), max(fy0, Y0)
        sx1, sy1 = min(fx0 + flow.shape[1], X1), min(fy0 + flow.shape[0], Y1)
        if sx1 > sx0 and sy1 > sy0:
            fl[sy0 - Y0 : sy1 - Y0, sx0 - X0 : sx1 - X0] = flow[sy0 - fy0 : sy1 - fy0, sx0 - fx0 : sx1 - fx0].float()
        moved = (fl != 0).any(dim=-1)
        if bool(moved.any()):
            reach = int(math.ceil(float(fl.abs().max()))) + 2
            px0, py0 = max(0, X0 - reach), max(0, Y0 - reach)
            px1, py1 = min(W, X1 + reach), min(H, Y1 + reach)
            src = _to_float(photo[py0:py1, px0:px1])
            coords = pixel_centres(Y1 - Y0, X1 - X0, device=device) + fl
            coords = coords + torch.tensor([X0 - px0, Y0 - py0], dtype=torch.float32, device=device)
            warped = sample_image(src, coords.to(src.dtype), mode=s.warp_mode)
            base = torch.where(moved[..., None], warped, base)

    # render alpha in the region's frame
    alpha = torch.zeros(Y1 - Y0, X1 - X0, dtype=torch.float32, device=device)
    rend = torch.zeros(Y1 - Y0, X1 - X0, C, dtype=base.dtype, device=device)
    ax0, ay0 = max(rx0, X0), max(ry0, Y0)
    ax1, ay1 = min(rx0 + rw, X1), min(ry0 + rh, Y1)
    if ax1 > ax0 and ay1 > ay0:
        sl_r = (slice(ay0 - ry0, ay1 - ry0), slice(ax0 - rx0, ax1 - rx0))
        sl_o = (slice(ay0 - Y0, ay1 - Y0), slice(ax0 - X0, ax1 - X0))
        alpha[sl_o] = alpha_full[sl_r]
        rend[sl_o] = rendered[sl_r].to(device=device, dtype=base.dtype)
        if s.color_match:
            m = alpha[sl_o] > 0.5
            rend[sl_o] = match_color(rend[sl_o], base[sl_o], m)
    a = alpha[..., None].to(base.dtype)
    blended = a * rend + (1.0 - a) * base
    changed = moved | (alpha > 0)
    region = torch.where(changed[..., None], _from_float(blended, photo.dtype), orig)
    out[Y0:Y1, X0:X1] = region
    used[Y0:Y1, X0:X1] = changed
    return CompositeResult(out, used, alpha_full)
