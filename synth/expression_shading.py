"""Expression shading: folds and furrows appear and disappear with the expression (an expression ratio image).

The warped photo keeps the source's lighting and its own folds. Following Liu, Shan & Zhang
("Expression ratio image", SIGGRAPH 2001): with the photo's light estimated once per face
(`estimate_light`: 9 spherical-harmonic coefficients, least squares of the face's pixel
luminance against the fitted mesh's normals), each output pixel of skin is multiplied by
``S(n_target) / S(n_source)``, clamped: the shading of the target surface over that of the source
surface at the same point of the skin. Both surfaces carry the wrinkle maps
(`affectsynth.wrinkles`) of their own blendshape weights, as bumps and as the occlusion at the
bottom of a furrow, so a smile deepens the nasolabial folds and a frown draws the glabellar
furrows; where the photo's fitted weights hold a fold the target does not, the photo's own crease
is lifted to its smoothed surroundings, so a smiling source loses its folds when made neutral; so is
the near-black crease a broad smile bunches up under the nose (`affectsynth.wrinkles`' subnasal
crease), which a relaxed lip would otherwise stretch into a dark patch over the philtrum. The same geometry and weights give a
ratio of exactly 1: neutral on a neutral source changes nothing.

Note:
    Albedo is taken as constant over the face (the fit's constant term absorbs it) and points the
    shading cannot explain (brows, eyes, lips, stubble) are down-weighted by a robust fit: a
    smoothed-photo albedo would also divide out the light's own gradient across the face.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch
from torch import Tensor

from affectsynth._masked import masked_rows
from affectsynth.face_render import FaceRenderer, RenderedFace
from affectsynth.fitting import Camera
from affectsynth.render import fit_sh_lighting, interpolate, rasterize, sh_shading
from affectsynth.render.camera import project_points, projection_matrix, to_clip
from affectsynth.render.mesh import vertex_normals
from affectsynth._furrow_kernels import (
    blur_weighted, crease_surroundings, edge_ratio, furrows, grid_ratio, lift_folds, shade_window, upsample_grid,
)
from affectsynth.wrinkles import WrinkleMaps, furrow_reach

__all__ = ["FaceLight", "ShadingSettings", "WindowShading", "estimate_light", "shading_ratio", "apply_shading"]

_LUMA = (0.299, 0.587, 0.114)
_EMPTY2 = np.zeros((1, 1), np.float32)
_EMPTY3 = np.zeros((1, 1, 1), np.float32)


@dataclass(frozen=True)
class ShadingSettings:
    """Defaults of the expression shading.

    Attributes:
        wrinkles: strength of the wrinkle maps (0 = only the mesh's own folds, 1 = as designed).
        occlusion_per_cm: darkening at the bottom of a furrow per cm of depth (the light a fold
            hides from its floor), on top of the shading of its walls.
        min_ratio, max_ratio: clamp of the ratio image.
        min_width_px: the narrowest furrow drawn, pixels (sigma).
        lift_blur_cm: scale of the smoothing a dropped fold is lifted to, cm.
        lift_threshold: darkening (fraction) below its surroundings that a pixel needs before it
            is lifted at all (skin texture stays); a crease is brightened by its own rule instead
            (`affectsynth.wrinkles.WrinkleFeature.lift_dark`).
        lift_ramp: darkening above the threshold at which a pixel is lifted fully.
        lift_gain: how fully a dropped fold is lifted per unit of the photo's fitted activation
            (clamped to 1): a fitted smile of 0.7 already shows its folds.
        crease_floor: the floor of a dropped crease (`affectsynth.wrinkles.WrinkleFeature.lift_dark`):
            its pixels darker than this fraction of the face's median skin luminance are left out
            of the surroundings it is brightened towards.
        mesh_blur_cm: smoothing of the mesh's own shading ratio, cm (its folds are a few
            millimetres off the photo's): it is sampled this far apart (2 to 8 pixels) and
            interpolated bilinearly.
    """

    wrinkles: float = 1.0
    occlusion_per_cm: float = 2.2
    min_ratio: float = 0.6
    max_ratio: float = 1.3
    min_width_px: float = 0.6
    lift_blur_cm: float = 0.45
    lift_threshold: float = 0.02
    lift_ramp: float = 0.08
    lift_gain: float = 1.5
    crease_floor: float = 0.3
    mesh_blur_cm: float = 0.35

    def __post_init__(self) -> None:
        if self.wrinkles < 0 or self.occlusion_per_cm < 0:
            raise ValueError(f"ShadingSettings: wrinkles and occlusion_per_cm must be >= 0, got {self.wrinkles}, {self.occlusion_per_cm}")
        if not 0 < self.min_ratio <= 1 <= self.max_ratio:
            raise ValueError(f"ShadingSettings: need 0 < min_ratio <= 1 <= max_ratio, got {self.min_ratio}, {self.max_ratio}")


@dataclass(frozen=True)
class FaceLight:
    """The photo's light on one face, and the source surface it was measured on.

    Attributes:
        coefficients: [9, 1] float32 SH lighting of the luminance, camera space, scaled so that
            the face's median shading is 1.
        vertices: [V, 3] float32 camera-space vertices of the fitted face (the source surface).
        px_per_cm: pixels per cm at the face's depth.
        points: how many pixels the fit used.
    """

    coefficients: Tensor
    vertices: Tensor
    px_per_cm: float
    points: int


def estimate_light(photo: Tensor, vertices: Tensor, renderer: FaceRenderer, camera: Camera, *,
                   max_side: int = 96, ridge: float = 0.1) -> FaceLight:
    """Fit the photo's SH lighting to the fitted face's normals (robust least squares).

    The face's skin is rasterized at most ``max_side`` pixels wide (the photo averaged to match):
    lighting is smooth, and a few thousand points fix 9 coefficients.

    Args:
        photo: [H, W, 3] uint8 the photo.
        vertices: [V, 3] camera-space vertices of the fitted face.
        renderer: the face renderer (skin triangles).
        camera: the photo's camera.
        max_side: longest side of the rasterization, pixels.
        ridge: damping of the directional coefficients (`fit_sh_lighting`): a face's normals
            span half a sphere, and albedo the fit cannot tell from shading (hair line, beard)
            should not turn into strong light from one side.

    Returns:
        `FaceLight`.
    """
    normals = vertex_normals(vertices, renderer.skin_tri)
    z = float(vertices[renderer.drawn_vertices, 2].median())
    px_per_cm = float(camera.fx) / max(z, 1e-6)
    pix = project_points(vertices[renderer.drawn_vertices], camera)
    x0, y0, w, h = renderer.window_for(pix, (camera.width, camera.height), pad=0)
    k = max(1, -(-max(w, h) // max_side))
    w, h = max(1, w // k), max(1, h // k)
    crop = camera.crop(x0, y0, w * k, h * k)  # then every k x k block of it is one pixel
    proj = projection_matrix(crop.fx / k, crop.fy / k, crop.cx / k, crop.cy / k, w, h, near=1.0, far=1000.0,
                             device=vertices.device)
    rast, _ = rasterize(to_clip(vertices[None], proj), renderer.skin_tri, (h, w))
    n, _ = interpolate(normals[None], rast, renderer.skin_tri)
    n = torch.nn.functional.normalize(n[0], dim=-1)
    window = photo[y0:y0 + h * k, x0:x0 + w * k].float() / 255.0
    luma = window @ torch.tensor(_LUMA, device=photo.device)
    luma = torch.nn.functional.avg_pool2d(luma[None, None], k)[0, 0]
    # grazing points sit where a small fit error samples background
    use = (rast[0, ..., 3] > 0) & (n[..., 2] < -0.35)
    points = int(use.sum())
    ones = torch.zeros(9, 1, device=vertices.device)
    ones[0, 0] = 1.0 / 0.282095
    if points < 50:
        return FaceLight(ones, vertices, px_per_cm, points)
    n_use = masked_rows(n, use).double()
    coeffs = fit_sh_lighting(n_use, masked_rows(luma, use)[:, None].double(), ridge=ridge, robust_iterations=3)
    median = sh_shading(n_use, coeffs).median()
    if not bool(median > 1e-3):
        return FaceLight(ones, vertices, px_per_cm, points)
    return FaceLight((coeffs / median).float(), vertices, px_per_cm, points)


def _gradient(height: Tensor, px_per_cm: float) -> Tensor:
    """[h, w, 3] image-space gradient (d/dX, d/dY, 0) per cm of a height map [h, w] (cm)."""
    F = torch.nn.functional
    hp = F.pad(height[None, None], (1, 1, 1, 1), mode="replicate")[0, 0]
    gx = (hp[1:-1, 2:] - hp[1:-1, :-2]) * (0.5 * px_per_cm)
    gy = (hp[2:, 1:-1] - hp[:-2, 1:-1]) * (0.5 * px_per_cm)
    return torch.stack([gx, gy, torch.zeros_like(gx)], -1)


def _bumped(n: Tensor, g: Tensor) -> Tensor:
    """[N, 3] normals of a surface with unit normals `n` [N, 3] displaced along them by a height
    whose image-space gradient is `g` [N, 3] (fine for the near-frontal skin that wrinkles)."""
    g = g - (g * n).sum(-1, keepdim=True) * n
    return torch.nn.functional.normalize(n - g, dim=-1)


def _grid_normals(pos: Tensor, valid: Tensor) -> Tensor:
    """[h, w, 3 m] unit normals (towards the camera) of m surfaces sampled on a pixel grid, from
    their camera-space points `pos` [h, w, 3 m]: central differences where both neighbours are
    `valid` [h, w], one-sided at the edges, 0 where a pixel has no valid neighbour on an axis."""
    F = torch.nn.functional

    def diff(p: Tensor, v: Tensor, dim: int) -> Tensor:
        n = p.shape[dim]
        idx = torch.arange(n, device=p.device)
        nxt, prv = (idx + 1).clamp(max=n - 1), (idx - 1).clamp_min(0)
        shape = [1, 1]
        shape[dim] = n
        vn = v.index_select(dim, nxt) & (idx < n - 1).view(shape)
        vp = v.index_select(dim, prv) & (idx > 0).view(shape)
        pn = torch.where(vn[..., None], p.index_select(dim, nxt), p)
        pv = torch.where(vp[..., None], p.index_select(dim, prv), p)
        return pn - pv

    dx, dy = diff(pos, valid, 1), diff(pos, valid, 0)
    m = pos.shape[-1] // 3
    dx, dy = dx.unflatten(-1, (m, 3)), dy.unflatten(-1, (m, 3))
    n = torch.linalg.cross(dy, dx)
    n = F.normalize(n, dim=-1) * valid[..., None, None]
    return n.flatten(-2)


@lru_cache(maxsize=64)
def _gaussian(radius: int, sigma: float, device: torch.device) -> Tensor:
    k = torch.exp(-0.5 * (torch.arange(-radius, radius + 1, dtype=torch.float32, device=device) / max(sigma, 1e-3)) ** 2)
    return k / k.sum()


def _blur(x: Tensor, weight: Tensor, sigma_px: float) -> Tensor:
    """[h, w, C] Gaussian blur of `x` [h, w, C] normalised by the blurred `weight` [h, w] (an
    average over the weighted pixels only)."""
    F = torch.nn.functional
    r = max(1, int(3 * sigma_px))
    k = _gaussian(r, round(sigma_px, 2), x.device)
    both = torch.cat([x * weight[..., None], weight[..., None]], -1).permute(2, 0, 1)[:, None]
    both = F.conv2d(F.pad(both, (r, r, 0, 0)), k.view(1, 1, 1, -1))
    both = F.conv2d(F.pad(both, (0, 0, r, r)), k.view(1, 1, -1, 1))
    both = both[:, 0].permute(1, 2, 0)
    return both[..., :-1] / both[..., -1:].clamp_min(1e-6)


def _upsample(x: Tensor, size: tuple[int, int], k: int) -> Tensor:
    """[H, W, C] bilinear upsampling by `k` of an [h, w, C] image sampled every k-th pixel, cut to `size`."""
    F = torch.nn.functional
    up = F.interpolate(x.permute(2, 0, 1)[None], scale_factor=float(k), mode="bilinear", align_corners=False)
    up = F.pad(up, (0, max(0, size[1] - up.shape[-1]), 0, max(0, size[0] - up.shape[-2])), mode="replicate")
    return up[0, :, : size[0], : size[1]].permute(1, 2, 0)


def _np(x: Tensor):
    """A contiguous CPU numpy view (or copy) of `x` for the numba kernels."""
    return x.detach().contiguous().cpu().numpy()


def _skin_pixels(rendered: RenderedFace, renderer: FaceRenderer) -> Tensor:
    """[h, w] bool the render's skin pixels: its per-pixel material where it carries one (one
    compare), else from the rasterized triangles' kinds."""
    if rendered.kind is not None:
        return rendered.kind == 0
    tid = rendered.rast[0, ..., 3].long() - 1
    return (tid >= 0) & (renderer.tri_kind[tid.clamp_min(0)] == 0)


def _compiled_applies(t: Tensor) -> bool:
    """Whether the shading of a window on ``t``'s device runs the compiled kernels (the CPU; no
    gradient flows through the shading either way)."""
    return t.device.type == "cpu"


def _luma(x: Tensor) -> Tensor:
    return torch.tensor(_LUMA, dtype=x.dtype, device=x.device)


@lru_cache(maxsize=16)
def _furrow_profile(maps: WrinkleMaps, px_per_cm: float, k: int, s: ShadingSettings) -> tuple[np.ndarray, ...]:
    """[F] arrays of the furrows at a face's scale, for the `furrows` and `lift_folds` kernels:
    float32 the candidate reach (cm, the furrow's reach plus a grid cell of k pixels), the groove
    sigma (cm), its depth factor (cm, negative) and the fold neighbourhood's radius (cm); bool
    which features are creases (`WrinkleFeature.lift_dark`), float64 their darkening kept (1
    elsewhere). The same for every target of a face (they depend on its scale, not on the
    expression): worked out once."""
    reach = furrow_reach(maps, px_per_cm=px_per_cm, min_width_px=s.min_width_px) + (k * 1.5) / px_per_cm
    sigma = torch.sqrt(maps.width_cm ** 2 + (s.min_width_px / max(px_per_cm, 1e-6)) ** 2)
    gain = -s.wrinkles * maps.depth_cm * maps.width_cm / sigma
    dark = _np(maps.lift_dark).astype(np.float64)
    crease = dark >= 0
    return tuple(_np(t) for t in (reach, sigma, gain, 2.5 * (maps.width_cm + 0.25))) + (crease, np.where(crease, dark, 1.0))


def _surroundings_weight(grid: Tensor, skin_k: Tensor, crease_near: Tensor, k: int, floor: float) -> Tensor:
    """[h, w] float32 weights of the k-grid's samples in the surroundings that dropped folds are
    lifted to: the skin, less the floor of a dropped crease (samples in its neighbourhood darker
    than ``floor`` x the window's median skin luminance). Such a crease can fill much of its own
    neighbourhood (a broad smile's, stretched over the philtrum) and would darken the skin it is
    lifted to. One compiled pass on every device (the grid is small).

    Args:
        grid: [h, w, 3] float32 the window's image on the k-grid, in [0, 1].
        skin_k: [h, w] bool its skin samples.
        crease_near: [H, W] float32 the `furrows` kernel's dropped-crease neighbourhood.
        k: the grid's step.
        floor: `ShadingSettings.crease_floor`.
    """
    weight = torch.empty(skin_k.shape, dtype=torch.float32)
    crease_surroundings(_np(grid.float()), _np(skin_k), _np(crease_near.float()), k, float(floor),
                        np.asarray(_LUMA, np.float32), weight.numpy())
    return weight.to(grid.device)


@dataclass(frozen=True)
class WindowShading:
    """How `apply_shading` changes a window: ``x = I + lift * (smooth - I)``, then x's luminance
    times ``ratio`` and its chroma (x minus its luminance) times ``sqrt(ratio)``: skin in shadow is
    more saturated than lit skin, so a brightened crease does not turn orange.

    Attributes:
        ratio: [h, w] float32 target over source shading (1 = unchanged).
        lift: [h, w] float32 in [0, 1], how far a pixel moves to its smoothed surroundings (a
            fold the target drops), or None.
        smooth: [h, w, 3] float32 in [0, 1] those surroundings (skin average; set where lift > 0),
            or None.
    """

    ratio: Tensor
    lift: Tensor | None = None
    smooth: Tensor | None = None


def shading_ratio(light: FaceLight, rendered: RenderedFace, vertices: Tensor, source_weights: Tensor,
                  target_weights: Tensor, renderer: FaceRenderer, maps: WrinkleMaps | None,
                  settings: ShadingSettings | None = None, *, image: Tensor | None = None) -> WindowShading:
    """The expression ratio image of the render's window: target over source shading on the skin.

    Three factors, each exactly 1 where source and target agree:

    - the mesh: ``S(n_target) / S(n_source)`` at the same point of the skin;
    - folds the target adds (wrinkle features more active in the target than in the photo): drawn
      as bumps and furrow-floor occlusion on the target surface, under the same light;
    - folds the target drops (features the photo's fitted weights activate, the target's not):
      near such a furrow, pixels of the photo darker than their smoothed surroundings (its own
      creases) are blended towards those surroundings: the photo's fold is where the photo shows
      it, which a model furrow a few millimetres off would miss.

    Args:
        light: the photo's light on this face (`estimate_light` on the source geometry).
        rendered: the target's render (its rasterization and coverage).
        vertices: [V, 3] camera-space vertices of the target face, in the photo's head pose.
        source_weights: [S] the photo's fitted blendshape weights (its wrinkle state).
        target_weights: [S] the output's blendshape weights.
        renderer: the face renderer.
        maps: wrinkle maps (`affectsynth.wrinkles.wrinkle_maps`), or None for the mesh's folds only.
        settings: `ShadingSettings`.
        image: [h, w, 3] uint8 the composite's pixels in the window (where the photo's folds are
            looked for); None skips the lifting of dropped folds.

    Returns:
        `WindowShading` of the window: the ratio is 1 off the skin and ramps to 1 over two
        pixels at the skin's edges.
    """
    s = settings or ShadingSettings()
    rast = rendered.rast
    if rast is None:
        raise ValueError("shading_ratio: the render carries no rasterization (RenderedFace.rast is None)")
    F = torch.nn.functional
    skin = _skin_pixels(rendered, renderer)
    ones = torch.ones(skin.shape, dtype=torch.float32, device=skin.device)
    if not bool(skin.any()):
        return WindowShading(ones)
    # the photo's own face: nothing to shade (the 53 weights first: they nearly always differ, and
    # comparing them is far cheaper than comparing the 20k vertices)
    if torch.equal(source_weights, target_weights) and torch.equal(vertices, light.vertices):
        return WindowShading(ones)
    px = light.px_per_cm
    # Smooth quantities (normals, texture coordinates, the mesh's ratio, the surroundings of a
    # fold) are computed every k-th pixel and upsampled; the furrows are drawn per pixel, only
    # near the features whose activation changes.
    k = int(min(8, max(2, round(s.mesh_blur_cm * px))))
    size = tuple(skin.shape)
    skin_k = skin[k // 2::k, k // 2::k]
    # the mesh's change of shape, smoothed (sampled every `mesh_blur_cm`, bilinear in between):
    # the fitted mesh's folds lie a few millimetres off the photo's, and a sharp mesh ratio
    # would draw a bright line beside each real fold
    cpu = _compiled_applies(skin)
    if cpu:  # one kernel for the grid (positions, normals of both surfaces, their shading), one to upsample
        hk, wk = skin_k.shape
        n_tk, sh_tk, geo = torch.empty(hk, wk, 3), torch.empty(hk, wk), torch.empty(hk, wk)
        grid_ratio(_np(rast[0]), _np(skin), k, _np(renderer.tri), _np(vertices.float()), _np(light.vertices.float()),
                   _np(light.coefficients[:, 0].float()), n_tk.numpy(), sh_tk.numpy(), geo.numpy())
        r = torch.empty(size, dtype=torch.float32)
        upsample_grid(geo.numpy(), k, r.numpy())
    else:
        rast_k = rast[:, k // 2::k, k // 2::k].contiguous()
        pos, _ = interpolate(torch.cat([vertices, light.vertices], -1)[None], rast_k, renderer.tri)
        normals = _grid_normals(pos[0], skin_k)  # target, source at the same points of the skin
        n_tk, n_sk = normals[..., :3], normals[..., 3:]
        sh_tk = sh_shading(n_tk, light.coefficients)[..., 0].clamp_min(0.05)
        geo = sh_tk / sh_shading(n_sk, light.coefficients)[..., 0].clamp_min(0.05)
        r = _upsample(torch.where(skin_k, geo, torch.ones_like(geo))[..., None], size, k)[..., 0]
    near = lift_near = None
    if maps is not None and s.wrinkles > 0:
        act_t, act_s = maps.activation(target_weights), maps.activation(source_weights)  # [F, M]
        change = act_t - act_s
        adds, drops = bool((change > 1e-6).any()), image is not None and bool((change < -1e-6).any())
        if adds or drops:
            # one kernel: candidates (near a furrow whose activation changes, judged every k-th
            # pixel), their wrinkle lookups, the added furrows' bumps and shading (into r) and
            # the dropped folds' neighbourhoods
            reach, sigma, gain, fold_radius, crease, crease_dark = _furrow_profile(maps, px, k, s)
            dev = r.device
            r = r.detach().to("cpu", torch.float32, copy=True).contiguous()
            lift_near, crease_near = torch.zeros_like(r), torch.zeros_like(r)
            near = torch.zeros(size, dtype=torch.bool)
            crease_feature = torch.zeros(size, dtype=torch.uint8)
            count = furrows(
                _np(rast[0]), _np(skin), k, _np(renderer.tri_uv), _np(renderer.model.uv), _np(maps.texture),
                _np(act_t), _np(act_s), reach, sigma, gain, fold_radius,
                float(s.lift_gain * min(1.0, s.wrinkles)), crease, adds, drops, _np(n_tk), _np(sh_tk),
                _np(light.coefficients[:, 0]), float(px), float(s.occlusion_per_cm), r.numpy(), lift_near.numpy(),
                near.numpy(), crease_near.numpy(), crease_feature.numpy())
            r, lift_near, near = r.to(dev), lift_near.to(dev), near.to(dev)
            crease_near, crease_feature = crease_near.to(dev), crease_feature.to(dev)
            if count == 0 or not drops:
                lift_near = None
    # fade to 1 at the skin's edges (eye and mouth openings, silhouette): no seams
    if cpu:
        edge, ratio = torch.empty(size, dtype=torch.float32), torch.empty(size, dtype=torch.float32)
        edge_ratio(_np(r.float()), _np(skin), _np(rendered.coverage.float()), float(s.min_ratio), float(s.max_ratio),
                   edge.numpy(), ratio.numpy())
    else:
        inside = skin.to(torch.float32)[None, None]
        edge = F.avg_pool2d(F.avg_pool2d(inside, (1, 5), stride=1, padding=(0, 2), count_include_pad=False),
                            (5, 1), stride=1, padding=(2, 0), count_include_pad=False)[0, 0]
        edge = edge * rendered.coverage.clamp(0, 1)
        ratio = torch.where(skin, 1 + (r.clamp(s.min_ratio, s.max_ratio) - 1) * edge, ones)
    lift = smooth = None
    if lift_near is not None and (bool((lift_near > 0.02).any()) or bool((crease_near > 0.02).any())):
        if cpu:  # the surroundings and the lift in two kernels
            sigma_k = s.lift_blur_cm * px / k
            grid = image[k // 2::k, k // 2::k][: skin_k.shape[0], : skin_k.shape[1]].float() / 255.0
            weight = _surroundings_weight(grid, skin_k, crease_near, k, s.crease_floor)
            smooth_k = torch.empty(grid.shape, dtype=torch.float32)
            blur_weighted(_np(grid), _np(weight), _np(_gaussian(max(1, int(3 * sigma_k)), round(sigma_k, 2), grid.device)),
                          smooth_k.numpy())
            lift, smooth = torch.zeros(size, dtype=torch.float32), torch.zeros(size + (3,), dtype=torch.float32)
            lift_folds(_np(image), _np(near), _np(lift_near.float()), smooth_k.numpy(), _np(edge), k, float(s.lift_threshold),
                       float(s.lift_ramp), np.asarray(_LUMA, np.float32), lift.numpy(), smooth.numpy(), _np(crease_near),
                       _np(crease_feature), crease_dark)
            return WindowShading(ratio, lift, smooth)
        rgb = image.float() / 255.0
        # the surroundings from the k-grid's samples of the skin (blurred far wider than k)
        grid = rgb[k // 2::k, k // 2::k][: skin_k.shape[0], : skin_k.shape[1]]
        weight = _surroundings_weight(grid, skin_k, crease_near, k, s.crease_floor)
        smooth_k = _blur(grid, weight.to(rgb), s.lift_blur_cm * px / k)
        yx = near.nonzero()
        cell = torch.minimum(yx // k, torch.tensor([skin_k.shape[0] - 1, skin_k.shape[1] - 1], device=yx.device))
        around = smooth_k[cell[:, 0], cell[:, 1]]  # [N, 3] the candidates' surroundings
        luma = rgb[near] @ _luma(rgb)
        dark = 1 - luma / (around @ _luma(rgb)).clamp_min(1e-3)  # how much darker than around
        lift = torch.zeros_like(ones)
        a = lift_near[near] * ((dark - s.lift_threshold) / s.lift_ramp).clamp(0.0, 1.0)
        keep = torch.from_numpy(crease_dark).to(rgb)[crease_feature[near].long()]
        crease_lift = torch.where(dark > keep, 1 - keep / dark.clamp_min(1e-6), torch.zeros_like(dark))
        a = torch.maximum(a, crease_near[near] * crease_lift)
        lift[near] = a * edge[near]
        smooth = torch.zeros_like(rgb)
        smooth[near] = around
    return WindowShading(ratio, lift, smooth)


def apply_shading(image: Tensor, shading: WindowShading, window: tuple[int, int, int, int]) -> Tensor:
    """The image with its window shaded; pixels with ratio 1 and no lift stay bit-exact.

    Args:
        image: [H, W, 3] uint8.
        shading: `WindowShading` of the window.
        window: (x0, y0, w, h) of the shading in the image (may stick out; that part is dropped).

    Returns:
        [H, W, 3] uint8, a new tensor.
    """
    x0, y0, w, h = window
    H, W = image.shape[:2]
    ax0, ay0, ax1, ay1 = max(0, x0), max(0, y0), min(W, x0 + w), min(H, y0 + h)
    out = image.clone()
    if ax1 <= ax0 or ay1 <= ay0:
        return out
    sl = (slice(ay0 - y0, ay1 - y0), slice(ax0 - x0, ax1 - x0))
    region = image[ay0:ay1, ax0:ax1]
    if _compiled_applies(image):  # one fused pass
        lift = shading.lift is not None
        dst = out[ay0:ay1, ax0:ax1]
        res = torch.empty(dst.shape, dtype=torch.uint8)
        shade_window(_np(region), _np(shading.ratio[sl].float()), _np(shading.lift[sl].float()) if lift else _EMPTY2,
                     _np(shading.smooth[sl].float()) if lift else _EMPTY3, lift, res.numpy())
        dst.copy_(res)
        return out
    r = shading.ratio[sl][..., None]
    x = region.float()
    keep = r == 1
    if shading.lift is not None:
        a = shading.lift[sl][..., None]
        x = x + a * (shading.smooth[sl] * 255.0 - x)
        keep = keep & (a == 0)
    y = x @ _luma(x)[:, None]
    scaled = (y * r + (x - y) * r.sqrt()).round().clamp(0, 255).to(torch.uint8)
    out[ay0:ay1, ax0:ax1] = torch.where(keep, region, scaled)
    return out
