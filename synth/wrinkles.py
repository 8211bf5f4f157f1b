"""Animated wrinkle maps: folds and furrows the face mesh is too smooth to make, in the model's UV space.

Production face rigs blend wrinkle (normal) maps by the weights of the shapes that cause them; here
the maps are built procedurally from the face model: each feature is a set of furrow curves placed
relative to the model's landmark vertices on the neutral face (centimetres, model space: +x is the
subject's left, +y up). Per texel of the UV tile the map stores the distance to the nearest furrow
of each feature and the masks that say which shape drives which part, so that the furrow's profile
can be drawn for any face size: a Gaussian groove whose width never falls below about half a pixel
and whose depth shrinks as it widens (the same shadow, spread), so a 48 px face gets the furrow's
shadow and a 400 px face its line.

Features and the shapes that drive them (FACS action unit in brackets):

- forehead lines [AU1+2]: browInnerUp (middle), browOuterUp (sides);
- glabellar furrows [AU4]: browDown;
- crow's feet [AU6]: cheekSquint;
- nose-bridge wrinkles [AU9]: noseSneer;
- nasolabial fold [AU10, AU12]: mouthSmile, mouthUpperUp;
- lip-corner dimple [AU14]: mouthDimple. The short crease the dimpler tucks in just outside the lip
  corner: the cue that tells a unilateral AU14 (contempt's smirk) from a half smile. It is drawn
  broad (sigma 1.4 mm) so that it still darkens the corner in a 48 px crop;
- subnasal crease [AU10, AU12]: mouthSmile, mouthUpperUp. A raised upper lip bunches the top of the
  philtrum up under the nose into a crease that the light hardly reaches (near-black in a photo of a
  broad smile): a target that relaxes the lip stretches that strip back over the philtrum, so the
  photo's crease is lifted there. The mesh models the bunching, so the feature draws no groove of
  its own (depth 0), and brightens only what is far darker than the skin around to a soft shadow
  (`lift_dark`): an occluded crease, not a moustache.

`wrinkle_lookup` reads the maps at pixels' texture coordinates, `feature_activation` weighs them by
a set of blendshape weights, `wrinkle_height` turns that into a height offset per pixel (negative
into the skin) and `fold_neighbourhood` into where such a fold may show in a photo;
`affectsynth.expression_shading` shades them under the photo's light.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import math
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Sequence

import torch
from torch import Tensor

from affectsynth.face_render import FaceRenderer
from affectsynth.render import interpolate, rasterize, texture

__all__ = ["WrinkleFeature", "WrinkleMaps", "FEATURES", "MASKS", "wrinkle_maps", "wrinkle_lookup", "feature_activation",
           "wrinkle_height", "fold_neighbourhood", "furrow_reach"]

#: Region masks the drivers use: one side of the face (+x = the subject's left, the ARKit "_L"
#: shapes), and the middle / outer part of the forehead.
MASKS = ("left", "right", "inner_left", "inner_right", "outer_left", "outer_right")


@dataclass(frozen=True)
class WrinkleFeature:
    """One kind of fold: its furrows (drawn on both sides), profile and driving shapes.

    Attributes:
        name: what it is called.
        depth_cm: depth of a furrow at full activation, cm.
        width_cm: the groove's Gaussian sigma, cm.
        curves: polylines of (x, y) neutral-face points in cm on the subject's left (+x); each is
            mirrored to the right. A curve with all x = 0 points crosses the middle and is not mirrored.
        drivers: (shape, gain, mask): the shape's weight times gain activates the feature inside
            the mask; "_L" shapes use "left"/"inner_left"/"outer_left" masks, "_R" the right ones.
        lift_dark: for a crease the light hardly reaches (a fold's own shadow rather than a
            groove): the darkening below its surroundings (a fraction) that a pixel near the
            dropped crease keeps at most; darker ones are brightened to it, so hair (a moustache)
            keeps its colour. None: the photo's fold is lifted to its surroundings wherever it
            is darker (`ShadingSettings.lift_threshold`, `lift_ramp`).
    """

    name: str
    depth_cm: float
    width_cm: float
    curves: tuple[tuple[tuple[float, float], ...], ...]
    drivers: tuple[tuple[str, float, str], ...]
    lift_dark: float | None = None

    def __post_init__(self) -> None:
        if self.lift_dark is not None and not 0 < self.lift_dark < 1:
            raise ValueError(f"WrinkleFeature {self.name!r}: lift_dark must be in (0, 1), got {self.lift_dark}")


def _sided(base: str, gain: float, mask: str = "") -> tuple[tuple[str, float, str], ...]:
    return ((f"{base}_L", gain, f"{mask}left"), (f"{base}_R", gain, f"{mask}right"))


def _arc(x0: float, x1: float, y: float, *, droop: float, wave: float, phase: float, n: int = 24) -> tuple:
    """A gently arched forehead line from x0 to x1 at height y (cm)."""
    xs = [x0 + (x1 - x0) * i / (n - 1) for i in range(n)]
    return tuple((x, y - droop * x * x + wave * math.sin(1.3 * x + phase)) for x in xs)


def _ray(origin: tuple[float, float], angle_deg: float, start: float, length: float) -> tuple:
    a = math.radians(angle_deg)
    d = (math.cos(a), math.sin(a))
    return tuple((origin[0] + d[0] * (start + length * t), origin[1] + d[1] * (start + length * t)) for t in (0.0, 0.5, 1.0))


# Positions are relative to the ICT neutral face's landmark vertices (68-point layout, cm): brows at
# y 5.2 (outer) to 6.3, inner brow ends x 1.17, outer eye corner (4.46, 3.43), nose root (0, 3.74),
# nose wing (1.25, -1.14), mouth corner (2.53, -3.52), top of the forehead y 9.4.
_EYE_CORNER = (4.46, 3.43)

#: The wrinkle features, in channel order.
FEATURES: tuple[WrinkleFeature, ...] = (
    WrinkleFeature(
        "forehead lines", depth_cm=0.06, width_cm=0.09,
        curves=tuple(_arc(-4.3 + 0.4 * k, 4.3 - 0.3 * k, 7.05 + 0.72 * k, droop=0.035, wave=0.06, phase=k)
                     for k in range(3)),
        drivers=_sided("browInnerUp", 1.0, "inner_") + _sided("browOuterUp", 1.0, "outer_"),
    ),
    WrinkleFeature(
        "glabellar furrows", depth_cm=0.09, width_cm=0.08,
        curves=(((0.34, 5.15), (0.45, 5.9), (0.6, 6.75)), ((0.85, 5.5), (0.98, 6.1))),
        drivers=_sided("browDown", 1.0),
    ),
    WrinkleFeature(
        "crow's feet", depth_cm=0.05, width_cm=0.06,
        curves=tuple(_ray(_EYE_CORNER, a, 0.45, 1.1) for a in (28.0, 5.0, -18.0, -40.0)),
        drivers=_sided("cheekSquint", 1.0),
    ),
    WrinkleFeature(
        "nose wrinkles", depth_cm=0.06, width_cm=0.07,
        curves=tuple(((0.22, 3.45 - 0.38 * k), (0.8, 3.2 - 0.42 * k), (1.35, 2.85 - 0.45 * k)) for k in range(3))
        + (((0.0, 4.05), (0.55, 4.0)), ((0.0, 4.4), (0.5, 4.36))),
        drivers=_sided("noseSneer", 1.0),
    ),
    WrinkleFeature(
        "nasolabial fold", depth_cm=0.13, width_cm=0.2,
        curves=(((1.6, -0.5), (2.05, -1.3), (2.55, -2.2), (2.95, -3.1), (3.2, -3.9), (3.3, -4.7)),),
        drivers=_sided("mouthSmile", 1.0) + _sided("mouthUpperUp", 0.7),
    ),
    WrinkleFeature(
        "lip-corner dimple", depth_cm=0.2, width_cm=0.14,
        curves=(((2.66, -3.1), (2.8, -3.35), (2.84, -3.6), (2.76, -3.9)),),
        drivers=_sided("mouthDimple", 1.0),
    ),
    WrinkleFeature(
        "subnasal crease", depth_cm=0.0, width_cm=0.08,
        curves=(((0.0, -1.55), (0.5, -1.5), (1.0, -1.35)),),
        drivers=_sided("mouthSmile", 1.0) + _sided("mouthUpperUp", 1.0),
        lift_dark=0.35,
    ),
)


@dataclass(frozen=True)
class WrinkleMaps:
    """The wrinkle features baked into the UV tile of a face model.

    Attributes:
        texture: [R, R, F + M] float32: per texel the distance (cm, on the neutral face) to the
            nearest furrow of each of the F features, then the M region masks (`MASKS`) in [0, 1].
        drive: [S, F, M] float32: activation of feature f in mask m per unit weight of shape s
            (the model's blendshape order).
        depth_cm: [F] float32 furrow depths.
        width_cm: [F] float32 furrow sigmas.
        lift_dark: [F] float32 each feature's `WrinkleFeature.lift_dark`, -1 where it has none.
    """

    texture: Tensor
    drive: Tensor
    depth_cm: Tensor
    width_cm: Tensor
    lift_dark: Tensor

    def activation(self, weights: Tensor) -> Tensor:
        """[F, M] activation of each feature in each mask for blendshape weights [S]."""
        S, F, M = self.drive.shape
        return (weights.to(self.drive)[None] @ self.drive.reshape(S, F * M)).reshape(F, M)


def _masks(p: Tensor) -> Tensor:
    """[N, M] region masks (`MASKS`) at neutral points [N, 3]."""
    x = p[:, 0]
    left = torch.sigmoid(x / 0.25)
    inner = torch.clamp((3.4 - x.abs()) / 1.4, 0.0, 1.0)
    inner = inner * inner * (3 - 2 * inner)
    return torch.stack([left, 1 - left, inner * left, inner * (1 - left), (1 - inner) * left, (1 - inner) * (1 - left)], -1)


def _curve_points(curves: Sequence[Sequence[tuple[float, float]]], step: float = 0.03) -> Tensor:
    """[P, 2] points every `step` cm along every curve and its mirror image."""
    pts = []
    for curve in curves:
        c = torch.tensor(curve, dtype=torch.float64)
        for side in ((1.0,) if bool((c[:, 0] == 0).all()) else (1.0, -1.0)):
            cc = c * torch.tensor([side, 1.0], dtype=torch.float64)
            for a, b in zip(cc[:-1], cc[1:]):
                n = max(2, int(math.ceil(float((b - a).norm()) / step)) + 1)
                t = torch.linspace(0, 1, n, dtype=torch.float64)[:, None]
                pts.append(a + (b - a) * t)
    return torch.cat(pts).to(torch.float32)


def _on_surface(xy: Tensor, verts: Tensor) -> Tensor:
    """[P, 3]: (x, y) points lifted onto the front of the neutral face (z of the xy-nearest vertex)."""
    nearest = torch.cdist(xy, verts[:, :2]).argmin(1)
    return torch.cat([xy, verts[nearest, 2:3]], 1)


#: The `WrinkleMaps` fields, as kept on disk.
_FIELDS = ("texture", "drive", "depth_cm", "width_cm", "lift_dark")


@lru_cache(maxsize=4)
def wrinkle_maps(renderer: FaceRenderer, resolution: int = 256) -> WrinkleMaps:
    """The wrinkle maps of a renderer's face model (built once per model and resolution).

    Building them takes ~0.4-0.7 s of CPU, in every process (each `generate` worker): so they are
    also kept on disk (`_disk_cache_path`: keyed by the model's mesh, UVs, skin triangles and
    shape names, this module's source and the resolution; written atomically) and read back in
    a few milliseconds by later processes. No writable cache folder: built every time.

    Args:
        renderer: the face renderer (its model, UVs and rendered skin triangles).
        resolution: side of the UV map; distances are smooth, so bilinear lookups stay exact
            for furrows much thinner than a texel.

    Returns:
        `WrinkleMaps`.
    """
    path = _disk_cache_path(renderer, resolution)
    dev = renderer.model.device
    if path is not None and path.is_file():
        try:
            d = torch.load(path, map_location="cpu", weights_only=True)
            return WrinkleMaps(**{k: d[k].to(dev) for k in _FIELDS})
        except Exception:  # a damaged or foreign file: rebuild (and overwrite) it
            pass
    maps = _build_wrinkle_maps(renderer, resolution)
    if path is not None:
        _store(path, maps)
    return maps


def _cache_dirs() -> list[Path]:
    """Where the wrinkle maps may be kept: $AFFECTSYNTH_CACHE_DIR, else next to this module
    (``__pycache__``, as numba's cache), else the user's cache folder."""
    env = os.environ.get("AFFECTSYNTH_CACHE_DIR")
    if env:
        return [Path(env)]
    user = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "affectsynth"
    return [Path(__file__).resolve().parent / "__pycache__", user]


def _disk_cache_path(renderer: FaceRenderer, resolution: int) -> Path | None:
    """The cache file of this model's maps at `resolution`, in the first writable cache folder."""
    m = renderer.model
    h = hashlib.blake2b(digest_size=16)
    h.update(Path(__file__).read_bytes())
    for t in (m.neutral, m.uv, m.triangles, m.triangle_uv, renderer.skin, m.neutral_normals):
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    h.update("\0".join(m.expression_names).encode())
    h.update(str(int(resolution)).encode())
    name = f"wrinkle_maps_{h.hexdigest()}.pt"
    for d in _cache_dirs():
        if (d / name).is_file():
            return d / name
        try:
            d.mkdir(parents=True, exist_ok=True)
        except OSError:
            continue
        if os.access(d, os.W_OK):
            return d / name
    return None


def _store(path: Path, maps: WrinkleMaps) -> None:
    """Write the maps to `path` atomically; a failure only costs the next process a rebuild."""
    from affectsynth.atomic import atomic_write_bytes

    buf = io.BytesIO()
    torch.save({k: getattr(maps, k).detach().cpu() for k in _FIELDS}, buf)
    with contextlib.suppress(OSError):
        atomic_write_bytes(path, buf.getvalue(), fsync=False)


def _build_wrinkle_maps(renderer: FaceRenderer, resolution: int) -> WrinkleMaps:
    """`wrinkle_maps` computed from the model (no caches)."""
    model = renderer.model
    dev = model.device
    tri = model.triangles[renderer.skin].long()
    tri_uv = model.triangle_uv[renderer.skin].long()
    corner_uv = model.uv[tri_uv.reshape(-1)]
    pos = torch.cat([corner_uv * 2 - 1, torch.zeros_like(corner_uv[:, :1]), torch.ones_like(corner_uv[:, :1])], 1)
    tri_c = torch.arange(pos.shape[0], dtype=torch.int32, device=dev).reshape(-1, 3)
    rast, _ = rasterize(pos[None], tri_c, (resolution, resolution))
    texel_pos, _ = interpolate(model.neutral[tri.reshape(-1)][None], rast, tri_c)
    covered = rast[0, ..., 3] > 0
    p = texel_pos[0][covered]
    normals = model.neutral_normals
    front = torch.unique(tri)
    front = front[normals[front, 2] > 0.3]
    F, M = len(FEATURES), len(MASKS)
    tex = torch.zeros(resolution, resolution, F + M, device=dev)
    dist = torch.full((p.shape[0], F), 100.0, device=dev)
    for f, feat in enumerate(FEATURES):
        pts = _on_surface(_curve_points(feat.curves).to(dev), model.neutral[front])
        for start in range(0, p.shape[0], 8192):
            dist[start:start + 8192, f] = torch.cdist(p[start:start + 8192], pts).min(1).values
    tex[covered] = torch.cat([dist, _masks(p)], 1)
    tex[~covered, :F] = 100.0
    names = model.expression_names
    drive = torch.zeros(len(names), F, M, device=dev)
    for f, feat in enumerate(FEATURES):
        for shape, gain, mask in feat.drivers:
            drive[names.index(shape), f, MASKS.index(mask)] += gain
    return WrinkleMaps(
        texture=tex,
        drive=drive,
        depth_cm=torch.tensor([f.depth_cm for f in FEATURES], device=dev),
        width_cm=torch.tensor([f.width_cm for f in FEATURES], device=dev),
        lift_dark=torch.tensor([-1.0 if f.lift_dark is None else f.lift_dark for f in FEATURES], device=dev),
    )


def wrinkle_lookup(maps: WrinkleMaps, uv: Tensor) -> tuple[Tensor, Tensor]:
    """Furrow distances and region masks at texture coordinates.

    Args:
        maps: `wrinkle_maps` of the face model.
        uv: [N, 2] float32 texture coordinates of the pixels (the model's UV tile).

    Returns:
        (distance [N, F] cm to each feature's nearest furrow, masks [N, M] in [0, 1]).
    """
    F = maps.depth_cm.shape[0]
    look = texture(maps.texture[None].contiguous(), uv[None, None].contiguous(), boundary_mode="clamp")[0, 0]
    return look[:, :F], look[:, F:]


def feature_activation(maps: WrinkleMaps, masks: Tensor, weights: Tensor) -> Tensor:
    """[N, F] activation in [0, 1.25] of each feature at the pixels, for blendshape weights.

    Args:
        maps: `wrinkle_maps` of the face model.
        masks: [N, M] region masks from `wrinkle_lookup`.
        weights: [S] blendshape weights, or their [F, M] `WrinkleMaps.activation` (computed once
            for several lookups).
    """
    act = maps.activation(weights) if weights.dim() == 1 else weights
    return (masks @ act.T).clamp(0.0, 1.25)


def wrinkle_height(maps: WrinkleMaps, distance: Tensor, activation: Tensor, *, px_per_cm: float,
                   strength: float = 1.0, min_width_px: float = 0.6) -> Tensor:
    """[N] height offsets (cm, negative into the skin) of the active furrows.

    The groove is a Gaussian cut at 3.5 sigma (exactly 0 beyond).

    Args:
        maps: `wrinkle_maps` of the face model.
        distance: [N, F] from `wrinkle_lookup`.
        activation: [N, F] from `feature_activation`.
        px_per_cm: the face's scale in the image: furrows are widened to at least
            ``min_width_px`` pixels (sigma), their depth scaled by the inverse (same shadow, spread).
        strength: multiplies every depth (0 = no wrinkles).
        min_width_px: the narrowest groove drawn, pixels.
    """
    sigma = torch.sqrt(maps.width_cm ** 2 + (min_width_px / max(px_per_cm, 1e-6)) ** 2)
    z = distance / sigma
    profile = torch.where(z < 3.5, torch.exp(-0.5 * z * z), torch.zeros_like(z))  # exactly 0 away from a furrow
    return (activation * profile * (-strength * maps.depth_cm * maps.width_cm / sigma)).sum(-1)


def furrow_reach(maps: WrinkleMaps, *, px_per_cm: float, min_width_px: float = 0.6, reach_cm: float = 0.25) -> Tensor:
    """[F] distance (cm) beyond which neither `wrinkle_height` nor `fold_neighbourhood` is non-zero.

    Args:
        maps: `wrinkle_maps` of the face model.
        px_per_cm: the face's scale in the image (as for `wrinkle_height`).
        min_width_px: as for `wrinkle_height`.
        reach_cm: as for `fold_neighbourhood`.
    """
    sigma = torch.sqrt(maps.width_cm ** 2 + (min_width_px / max(px_per_cm, 1e-6)) ** 2)
    return torch.maximum(3.5 * sigma, 2.5 * (maps.width_cm + reach_cm))


def fold_neighbourhood(maps: WrinkleMaps, distance: Tensor, activation: Tensor, *, reach_cm: float = 0.25) -> Tensor:
    """[N] in [0, 1]: how far each pixel lies within ``reach_cm`` (plus the furrow's width) of an
    active furrow: where a photo's own fold of that feature can be, given fit error. A biweight
    of radius 2.5 x (width + reach): exactly 0 beyond it.

    Args:
        maps: `wrinkle_maps` of the face model.
        distance: [N, F] from `wrinkle_lookup`.
        activation: [N, F] from `feature_activation` (e.g. source minus target, clamped at 0).
        reach_cm: how far from the model's furrow the photo's fold may lie.
    """
    radius = 2.5 * (maps.width_cm + reach_cm)
    near = (1 - (distance / radius) ** 2).clamp_min(0) ** 2
    return (activation.clamp(0, 1) * near).amax(-1)
