"""Face-specific rendering glue: which triangles are skin, mouth, teeth; their materials; one window render.

`render/` stays face-agnostic; this module knows the ICT-based model's materials and turns a mesh, the
photo's texture and a camera window into colour and coverage with the four primitives.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import torch
from torch import Tensor

from affectsynth.fitting import Camera, FaceModel
from affectsynth.render import antialias, antialias_construct_topology_hash, interpolate, rasterize, texture
from affectsynth.render.camera import Intrinsics, to_clip
from affectsynth.render.mesh import vertex_normals
from affectsynth.teeth import TEETH_UV_TILE, PhotoTeeth

__all__ = ["MouthMaterials", "FaceRenderer", "RenderedFace", "WindowRaster", "NARROW_FACE_VERTICES"]

#: A typical skin colour in a photo and its saturation (max - min) / max: the mouth's materials are
#: tuned for it and scaled to the photo's own skin.
TYPICAL_SKIN = (0.72, 0.56, 0.47)
REFERENCE_SKIN_SATURATION = 0.35
#: Teeth luma over mean skin luma, as the dev photos' own teeth measure (astronaut 1.38, Tom Cruise
#: 1.30, bald_guys#0 1.45): material teeth in a bright photo stay below white, not clipped.
TEETH_OVER_SKIN = 1.35

#: ICT-FaceKit's "narrow face area": vertices [0, 6706) are the front of the face (no ears, neck, skull).
NARROW_FACE_VERTICES = 6706


@dataclass(frozen=True)
class MouthMaterials:
    """Colours (linear-ish RGB in [0, 1]) of the mouth interior, and how it darkens with depth.

    Attributes:
        teeth: off-white of the front teeth.
        gums_tongue: gums and tongue.
        socket: the mouth cavity walls.
        depth_falloff_cm: colour is multiplied by ``floor + (1 - floor) * exp(-depth / falloff)``,
            depth measured behind the front teeth (teeth) or behind the lips (gums, tongue, cavity),
            so the back of the mouth is dark and an opened mouth reads as a mouth.
        floor: the darkest factor.
        ambient: shading of a mouth surface seen edge-on; one facing the camera gets 1 (the
            facing ratio |n . v| interpolates between), so teeth look rounded, not cut out.
        teeth_ambient: the same for the teeth, lighter: their edges are translucent enamel, and
            the edges are what a slightly parted mouth shows (a grey band with `ambient`).
        teeth_gap_px: teeth-coloured closing of the teeth in the image: gaps up to this many
            pixels between teeth (the model's crowns stand apart, photos show them touching) take
            the teeth's colour instead of showing the dark mouth behind. 0 = off.
        teeth_gap_shade: factor of that colour in the gaps between material teeth: a darker
            interproximal line, so the row reads as separate teeth (1 = a flat band). Gaps
            between the photo's own teeth keep their colour (the photo shows its own gaps).
        min_opening: openings between the lips thinner than this fraction of the mouth's width
            (vertically, in the image; at least 2 px) are closed: the lips above and below meet
            there (their colours interpolated across the slit, darkened by `lip_line`), so lips a
            target leaves closed (neutral, pressed anger, contempt) show no mouth at all. Openings
            up to 2 px thicker fade from the cavity's shadow colour to the mouth. 0 = off.
        lip_line: the closed lips' meeting line: fraction of the lip colour kept (1 = no line).
    """

    teeth: tuple[float, float, float] = (0.92, 0.89, 0.82)
    gums_tongue: tuple[float, float, float] = (0.62, 0.30, 0.29)
    socket: tuple[float, float, float] = (0.32, 0.13, 0.12)
    depth_falloff_cm: float = 2.0
    floor: float = 0.22
    ambient: float = 0.55
    teeth_ambient: float = 0.75
    teeth_gap_px: int = 1
    teeth_gap_shade: float = 0.72
    min_opening: float = 0.06
    lip_line: float = 0.8

    def __post_init__(self) -> None:
        if not 0.0 <= self.min_opening < 0.5:
            raise ValueError(f"MouthMaterials: min_opening must be in [0, 0.5), got {self.min_opening}")
        if not 0.0 <= self.teeth_gap_shade <= 1.0:
            raise ValueError(f"MouthMaterials: teeth_gap_shade must be in [0, 1], got {self.teeth_gap_shade}")
        if not 0.0 <= self.lip_line <= 1.0:
            raise ValueError(f"MouthMaterials: lip_line must be in [0, 1], got {self.lip_line}")


@dataclass(frozen=True)
class WindowRaster:
    """The face's triangles rasterized into a window of the photo.

    Attributes:
        rast: [1, h, w, 4] rasterizer output (u, v, z/w, triangle_id + 1) over `FaceRenderer.tri`.
        clip: [1, V, 4] clip-space vertices.
        camera: the window's camera (the photo's camera cropped to the window).
        kind: [h, w] int64 material per pixel: -1 nothing, 0 skin, 1 teeth, 2 gums/tongue, 3 socket.
    """

    rast: Tensor
    clip: Tensor
    camera: Intrinsics
    kind: Tensor


@dataclass(frozen=True)
class RenderedFace:
    """A render of a window of the photo.

    Attributes:
        color: [h, w, 3] float32 in [0, 1], antialiased.
        coverage: [h, w] float32 in [0, 1].
        window: (x0, y0, w, h) in photo pixels.
        photo_weight: [h, w] float32 in [0, 1], how far the (warped) photo can stand in for the
            render: the skin's `photo_weight` texture where skin is drawn, 0 on the mouth
            materials; None when no such texture was given.
        kind: [h, w] int64 material of the rasterized surface per pixel (see `WindowRaster.kind`).
        rast: [1, h, w, 4] the window's rasterization into `FaceRenderer.tri` (u, v, z/w,
            triangle_id + 1; 0 = background), for steps that shade the same pixels again.
    """

    color: Tensor
    coverage: Tensor
    window: tuple[int, int, int, int]
    photo_weight: Tensor | None = None
    kind: Tensor | None = None
    rast: Tensor | None = None


class FaceRenderer:
    """Renders the face model (skin textured from the photo, mouth interior from materials).

    Built once per model; holds the triangle subsets and per-vertex mouth depth.
    """

    def __init__(self, model: FaceModel, materials: MouthMaterials | None = None):
        self.model = model
        self.materials = materials or MouthMaterials()
        names = model.material_names
        mat = model.triangle_material
        # The front of the face only: the outer ring of the face region (ears, sides of the head, neck)
        # sits at the silhouette, where a small fit error samples background into the texture; the
        # warped photo shows it instead.
        front = (model.triangles.long() < NARROW_FACE_VERTICES).all(1)
        self.all_skin = mat == names.index("M_Face")
        self.skin = self.all_skin & front
        self.teeth = mat == names.index("M_Teeth")
        self.gums = mat == names.index("M_GumsTongue")
        self.socket = mat == names.index("M_BackHead")  # the mouth socket in the face+mouth subset
        self.drawn = self.skin | self.teeth | self.gums | self.socket
        self.tri = model.triangles[self.drawn].contiguous()
        self.tri_uv = model.triangle_uv[self.drawn].contiguous()
        self.tri_kind = torch.zeros(int(self.drawn.sum()), dtype=torch.long, device=model.device)
        for k, m in enumerate((self.teeth, self.gums, self.socket), start=1):
            self.tri_kind[m[self.drawn]] = k
        # skin triangle lists: the rendered front (texture unwrap) and all skin (motion field)
        self.skin_tri = model.triangles[self.skin].contiguous()
        self.mouth_tri = model.triangles[self.teeth | self.gums | self.socket].contiguous()
        self.motion_tri = model.triangles[self.all_skin].contiguous()
        self._mouth_corners = model.landmarks68[[48, 54]]
        #: material kind per triangle id + 1 (a raster's id channel): -1 for 0, the background
        self._kind_of_id = torch.cat([torch.full((1,), -1, dtype=torch.long, device=model.device), self.tri_kind])
        # per-model constants, computed once: vertices each list uses, antialias edge adjacency
        self.drawn_vertices = torch.unique(self.tri.long())
        self.motion_vertices = torch.unique(self.motion_tri.long())
        self.topology = antialias_construct_topology_hash(self.tri)

    @cached_property
    def mouth_depth(self) -> Tensor:
        """[V, 1] shading depth in cm: the distance behind the front teeth (teeth: the side teeth sit in
        the cheeks' shadow, the buccal corridor of a smile) or the distance behind the lips (rest of
        the mouth); 0 on the skin."""
        m = self.model
        lips_z = m.neutral[m.landmarks68[62], 2]
        depth = (lips_z - m.neutral[:, 2]).clamp_min(0.0)
        t0, t1 = m.region("teeth")
        depth[t0:t1] = (m.neutral[t0:t1, 2].max() - m.neutral[t0:t1, 2]).clamp_min(0.0)
        start, end = m.region("face")
        depth[start:end] = 0.0
        return depth[:, None]

    @cached_property
    def mouth_light(self) -> Tensor:
        """[V] light reaching a mouth vertex, from its neutral model-space normal and place: 1 on the
        front teeth's outer (labial) faces and edges, falling to 0.3 on inner (lingual) faces, which
        face into the dark mouth, and to 0.35 on the side teeth 1.2 .. 2.7 cm from the midline; 1
        off the teeth."""
        m = self.model
        light = torch.ones(m.num_vertices, device=m.device)
        t0, t1 = m.region("teeth")
        nz = m.neutral_normals[t0:t1, 2]  # model +z points out of the face
        light[t0:t1] = 0.3 + 0.7 * (1.0 + 1.5 * nz).clamp(0.0, 1.0)
        # the cheeks shade the side teeth (a smile's buccal corridor; a turned head shows them)
        x = m.neutral[t0:t1, 0].abs()
        light[t0:t1] *= (1.0 - (x - 1.2) / 1.5).clamp(0.35, 1.0)
        return light

    def material_colors(self, skin_color: Tensor) -> Tensor:
        """[4, 3] colour per triangle kind (0 = skin placeholder, teeth, gums/tongue, socket).

        The mouth's materials follow the photo: their brightness scales with the skin's luminance
        (teeth do not glow in a dark photo; the teeth's luma is `TEETH_OVER_SKIN` x the skin's, at
        most 0.95 in any channel) and their saturation with the skin's, so a grayscale or faded
        photo gets a grayscale or faded mouth.

        Args:
            skin_color: [3] mean RGB of the visible face in the photo, in [0, 1].
        """
        weights = torch.tensor([0.299, 0.587, 0.114], device=skin_color.device)
        lum = float(skin_color @ weights)
        gain = min(1.25, max(0.45, lum / 0.55))
        sat = float((skin_color.max() - skin_color.min()) / skin_color.max().clamp_min(1e-6))
        chroma = min(1.0, sat / REFERENCE_SKIN_SATURATION)
        mm = self.materials
        rows = torch.tensor([(0.0, 0.0, 0.0), mm.teeth, mm.gums_tongue, mm.socket], dtype=torch.float32, device=skin_color.device)
        gray = (rows @ weights)[:, None]
        out = (gray + (rows - gray) * chroma) * gain
        # teeth: TEETH_OVER_SKIN x the skin's luma (what the photos' own teeth measure), never clipped
        teeth = out[1] * (TEETH_OVER_SKIN * lum / max(float(out[1] @ weights), 1e-6))
        out[1] = teeth * min(1.0, 0.95 / float(teeth.max()))
        return out

    def _photo_colors(self, skin_color: Tensor | None, teeth: PhotoTeeth | None,
                      device: torch.device) -> tuple[Tensor, Tensor]:
        """(colours [4, 3], shadow [3]) of `render`: `material_colors` of the skin colour (default
        `TYPICAL_SKIN`) with the photo's own teeth colour, and half the socket's colour for thin
        openings. The same for every target of a photo: the last few are kept (read-only), unless
        an input requires grad."""
        skin = torch.tensor(TYPICAL_SKIN, device=device) if skin_color is None else skin_color
        teeth_color = None if teeth is None else teeth.color
        if skin.requires_grad or (teeth_color is not None and teeth_color.requires_grad):
            return self._colors_of(skin, teeth_color)
        key = (self.materials, skin.cpu().numpy().tobytes(), str(skin.dtype), str(skin.device),
               None if teeth_color is None else teeth_color.cpu().numpy().tobytes())
        cache = self.__dict__.setdefault("_photo_colors_cache", {})
        hit = cache.get(key)
        if hit is None:
            if len(cache) >= 8:
                cache.pop(next(iter(cache)))
            hit = cache[key] = self._colors_of(skin, teeth_color)
        return hit

    def _colors_of(self, skin_color: Tensor, teeth_color: Tensor | None) -> tuple[Tensor, Tensor]:
        """`_photo_colors`, computed."""
        colors = self.material_colors(skin_color)
        shadow = colors[3] * 0.5
        if teeth_color is not None:
            colors[1] = teeth_color.to(colors)
        return colors, shadow

    def teeth_visibility(self, vertices: Tensor) -> float:
        """Deprecated, unused: 0 for closed lips (inner-lip gap <= 1 mm), rising to 1 at a 5 mm gap.

        The render no longer dims the teeth by this landmark gap (pressed lips measured more than
        neutral ones); thin openings between the lips close instead (`MouthMaterials.min_opening`).
        """
        import warnings

        warnings.warn("FaceRenderer.teeth_visibility is deprecated and no longer used by render(); "
                      "see MouthMaterials.min_opening", DeprecationWarning, stacklevel=2)
        lm = self.model.landmarks68
        upper, lower = vertices[lm[[61, 62, 63]]], vertices[lm[[67, 66, 65]]]
        gap = float((upper - lower).norm(dim=-1).max())
        return min(1.0, max(0.0, (gap - 0.1) / 0.4))

    def window_for(self, pix: Tensor, size: tuple[int, int], *, pad: int = 4) -> tuple[int, int, int, int]:
        """Bounding window (x0, y0, w, h) of projected vertices `pix` [V, 2] (any mask applied), clipped."""
        w_img, h_img = size
        # min / max in numpy (the same values; a [2, 2] `pixel_bounds` costs more in torch ops than
        # in arithmetic), one column at a time (numpy's axis-0 reduction of a [V, 2] array is ~30x
        # slower: 0.4 ms on 9k points), floor / ceil in Python: exact, as the window's integer pad is
        p = pix.detach().cpu().numpy()
        xs, ys = p[:, 0], p[:, 1]
        lo_x, lo_y, hi_x, hi_y = float(xs.min()), float(ys.min()), float(xs.max()), float(ys.max())
        x0, y0 = max(0, math.floor(lo_x) - pad), max(0, math.floor(lo_y) - pad)
        x1, y1 = min(w_img, math.ceil(hi_x) + pad), min(h_img, math.ceil(hi_y) + pad)
        return x0, y0, max(1, x1 - x0), max(1, y1 - y0)

    def rasterize_window(self, vertices_cam: Tensor, camera: Camera, window: tuple[int, int, int, int]) -> WindowRaster:
        """Rasterize the drawn triangles into a window of the photo, at photo resolution.

        Args:
            vertices_cam: [V, 3] camera-space vertices (cm, OpenCV).
            camera: the photo's camera.
            window: (x0, y0, w, h) photo pixels.
        """
        x0, y0, w, h = window
        cam = camera.crop(x0, y0, w, h)
        proj = cam.projection_matrix(near=1.0, far=1000.0, device=vertices_cam.device)
        compiled = _compiled_pixels(vertices_cam)
        if compiled:
            from affectsynth._face_kernels import to_clip_  # noqa: PLC0415  (numba import is slow)

            clip = torch.empty(1, vertices_cam.shape[0], 4)
            to_clip_(vertices_cam.detach().numpy(), proj.numpy(), clip[0].numpy())
        else:
            clip = to_clip(vertices_cam[None], proj)
        rast, _ = rasterize(clip, self.tri, (h, w), grad_db=False)  # no rast_db: the texture is sampled bilinearly
        if compiled and rast.device.type == "cpu":
            from affectsynth._face_kernels import pixel_kinds_  # noqa: PLC0415  (numba import is slow)

            kind = torch.empty(h, w, dtype=torch.long)
            pixel_kinds_(rast[0].detach().numpy(), self._kind_of_id.numpy(), kind.numpy())
        else:
            kind = self._kind_of_id.index_select(0, rast[0, ..., 3].reshape(-1).long()).view(h, w)
        return WindowRaster(rast, clip, cam, kind)

    def render(
        self,
        vertices_cam: Tensor,
        tex: Tensor,
        camera: Camera,
        window: tuple[int, int, int, int],
        *,
        skin_color: Tensor | None = None,
        shading: Tensor | None = None,
        photo_weight: Tensor | None = None,
        teeth: PhotoTeeth | None = None,
    ) -> RenderedFace:
        """Render the mesh into a window of the photo.

        Args:
            vertices_cam: [V, 3] camera-space vertices (cm, OpenCV).
            tex: [R, R, 3] face texture (the ICT [0, 1] UV tile), float32 in [0, 1].
            camera: the photo's camera.
            window: (x0, y0, w, h) photo pixels to render.
            skin_color: [3] mean RGB of the visible face in the photo (sets the mouth colours'
                brightness and saturation); default a typical skin tone.
            shading: [V, 1] optional per-vertex multiplier of the skin colour (relighting).
            photo_weight: [R, R] optional texture (same UVs as `tex`) of how reliably the photo
                saw each texel; rendered into `RenderedFace.photo_weight`.
            teeth: the photo's own teeth (`affectsynth.teeth.unwrap_photo_teeth`): drawn on the
                model's teeth where the photo saw them; elsewhere the material teeth take their
                colour. None = material teeth only.

        Returns:
            `RenderedFace` with colour and coverage of the window.
        """
        raster = self.rasterize_window(vertices_cam, camera, window)
        rast, clip = raster.rast, raster.clip
        kind = raster.kind.clamp_min(0)
        mm = self.materials
        colors, shadow = self._photo_colors(skin_color, teeth, vertices_cam.device)
        compiled = _compiled_path(vertices_cam, tex, shading, photo_weight, teeth)
        shade = self._shade_compiled if compiled else self._shade_torch
        skin, mouth, own, seen = shade(vertices_cam, raster, tex, colors, shadow, shading, photo_weight, teeth)
        if mm.teeth_gap_px > 0:
            mouth, kind = _close_teeth_gaps(mouth, kind, mm.teeth_gap_px, shade=mm.teeth_gap_shade, own=own)
        if mm.min_opening > 0:
            # at least 2 px: on small faces a one-pixel line of teeth reads as a white scratch
            min_px = max(2, int(round(mm.min_opening * self._mouth_width_px(vertices_cam, raster.camera))))
            mouth = _close_slits(mouth, skin, kind > 0, min_px, shadow=shadow, lip_line=mm.lip_line)
        rgba = _window_rgba(raster.kind, kind, skin, mouth, compiled=compiled)
        out = antialias(rgba[None], rast, clip, self.tri, topology_hash=self.topology)[0]
        return RenderedFace(out[..., :3].clamp(0, 1), out[..., 3].clamp(0, 1), window, seen, raster.kind, rast)

    def _mouth_width_px(self, vertices_cam: Tensor, camera: Intrinsics) -> float:
        """Distance in pixels between the projected mouth corners (landmarks 48 and 54): `project_points`
        on two points in float32 numpy (a dozen tiny torch ops cost more than the rest of the slit pass)."""
        p = vertices_cam.detach()[self._mouth_corners].cpu().numpy()
        f = np.array([camera.fx, camera.fy], dtype=p.dtype)
        c = np.array([camera.cx, camera.cy], dtype=p.dtype)
        uv = p[:, :2] / p[:, 2:3] * f + c
        return float(np.linalg.norm(uv[0] - uv[1]))

    def _mouth_attributes(self, vertices_cam: Tensor) -> Tensor:
        """[V, 3] per-vertex (depth behind the lips or front teeth cm, facing ratio |n . v| / |v|, light)."""
        normals = vertex_normals(vertices_cam, self.mouth_tri)
        facing = (normals * vertices_cam).sum(-1).abs() / vertices_cam.norm(dim=-1).clamp_min(1e-6)
        return torch.stack([self.mouth_depth[:, 0], facing, self.mouth_light], -1)

    @cached_property
    def _mouth_incidence(self) -> tuple[np.ndarray, np.ndarray]:
        """(start [V + 1], triangles [3 M]) int64: the mouth triangles around each vertex, CSR, ordered
        by (corner, triangle) as `vertex_normals` sums them; for `_face_kernels.mouth_facing_`."""
        corners = self.mouth_tri.T.reshape(-1).long().numpy()  # corner 0 of every triangle, then 1, 2
        order = np.argsort(corners, kind="stable")
        start = np.zeros(self.model.num_vertices + 1, dtype=np.int64)
        np.cumsum(np.bincount(corners, minlength=self.model.num_vertices), out=start[1:])
        return start, order % self.mouth_tri.shape[0]

    @cached_property
    def _mouth_attributes_constant(self) -> np.ndarray:
        """[V, 3] float32 (mouth depth, 0, mouth light): `_mouth_attributes` but the facing ratio."""
        return torch.stack([self.mouth_depth[:, 0], torch.zeros_like(self.mouth_light), self.mouth_light], -1).numpy()

    def _mouth_attributes_compiled(self, vertices_cam: Tensor, raster: WindowRaster) -> np.ndarray:
        """[V, 3] float32 `_mouth_attributes` where the window's mouth pixels read them (the vertices of
        their triangles); the facing ratio is 0 elsewhere. CPU, float32, no grad."""
        from affectsynth._face_kernels import mouth_facing_  # noqa: PLC0415  (numba import is slow)

        out = self._mouth_attributes_constant.copy()
        start, tris = self._mouth_incidence
        mouth_facing_(raster.rast[0].detach().contiguous().numpy(), raster.kind.contiguous().numpy(), self.tri.numpy(),
                      vertices_cam.detach().contiguous().numpy(), self.mouth_tri.numpy(), start, tris, out)
        return out

    def _shade_torch(self, vertices_cam: Tensor, raster: WindowRaster, tex: Tensor, colors: Tensor, shadow: Tensor,
                     shading: Tensor | None, photo_weight: Tensor | None,
                     teeth: PhotoTeeth | None) -> tuple[Tensor, Tensor, Tensor, Tensor | None]:
        """The window's skin [h, w, 3], mouth [h, w, 3], own-teeth weight [h, w] and photo weight
        [h, w] (None without `photo_weight`) with the render primitives: any device, differentiable.
        See `render` for the arguments."""
        rast = raster.rast
        kind = raster.kind.clamp_min(0)
        covered = raster.kind >= 0
        mm = self.materials
        uv, _ = interpolate(self.model.uv[None], rast, self.tri_uv)
        skin = texture(tex[None].contiguous(), uv, boundary_mode="clamp")[0]
        if shading is not None:
            shade, _ = interpolate(shading[None], rast, self.tri)
            skin = skin * shade[0]
        # the mouth's colours matter only on mouth pixels (kind > 0; the skin shows elsewhere):
        # they are computed in the mouth's bounding box only, zeros outside
        mouth = torch.zeros_like(skin)
        box = _bounding_box(kind > 0)
        if box is not None:
            shade_attr = self._mouth_attributes(vertices_cam)
            depth_facing, _ = interpolate(shade_attr[None], rast[:, box[0], box[1]].contiguous(), self.tri)
            depth, facing, light = depth_facing[0, ..., :1], depth_facing[0, ..., 1:2], depth_facing[0, ..., 2:]
            falloff = mm.floor + (1.0 - mm.floor) * torch.exp(-depth / mm.depth_falloff_cm)
            kind_box = kind[box]
            ambient = torch.where((kind_box == 1)[..., None], mm.teeth_ambient, mm.ambient)
            darken = falloff * (ambient + (1.0 - ambient) * facing.clamp(0.0, 1.0)) * light
            # teeth deep in the mouth or seen edge-on sink into the cavity's shadow, not into grey
            mouth[box] = torch.where((kind_box == 1)[..., None], shadow + (colors[1] - shadow) * darken,
                                     colors[kind_box] * darken)
        is_teeth = kind == 1
        own = torch.zeros(kind.shape, dtype=skin.dtype, device=skin.device)
        if teeth is not None and bool(is_teeth.any()):
            tile = torch.tensor(TEETH_UV_TILE, dtype=uv.dtype, device=uv.device)
            at = (uv[0][is_teeth] - tile)[None, None]  # [1, 1, N, 2] teeth pixels only
            sample = texture(teeth.rgbw.to(uv.dtype)[None], at, boundary_mode="clamp")[0, 0]
            wt = sample[:, 3:].clamp(0, 1)
            mouth[is_teeth] = wt * sample[:, :3] + (1 - wt) * mouth[is_teeth]
            own[is_teeth] = wt[:, 0]
        seen = None
        if photo_weight is not None:
            sampled = texture(photo_weight[None, :, :, None].to(uv.dtype).contiguous(), uv, boundary_mode="clamp")[0, ..., 0]
            seen = torch.where(covered & (kind == 0), sampled, torch.zeros_like(sampled)).clamp(0, 1)
        return skin, mouth, own, seen

    def _shade_compiled(self, vertices_cam: Tensor, raster: WindowRaster, tex: Tensor, colors: Tensor, shadow: Tensor,
                        shading: Tensor | None, photo_weight: Tensor | None,
                        teeth: PhotoTeeth | None) -> tuple[Tensor, Tensor, Tensor, Tensor | None]:
        """`_shade_torch` in one compiled pass over the window (CPU, float32, nothing requires grad)."""
        from affectsynth._face_kernels import shade_face  # noqa: PLC0415  (numba import is slow)

        mm = self.materials
        h, w = raster.kind.shape
        skin = torch.empty(h, w, 3)
        mouth = torch.empty(h, w, 3)
        own = torch.empty(h, w)
        seen = torch.empty(h, w)
        no_teeth = torch.zeros(0, 0, 4)
        attr = self._mouth_attributes_compiled(vertices_cam, raster)
        shade_face(raster.rast[0].detach().contiguous().numpy(), raster.kind.contiguous().numpy(), self.tri.numpy(),
                   self.tri_uv.numpy(), self.model.uv.numpy(), tex.detach().contiguous().numpy(),
                   (torch.zeros(0, 0) if photo_weight is None else photo_weight.detach()).contiguous().numpy(),
                   (torch.zeros(0) if shading is None else shading.detach()[:, 0].contiguous()).numpy(),
                   attr, colors.contiguous().numpy(), shadow.contiguous().numpy(),
                   np.array([mm.floor, mm.depth_falloff_cm, mm.ambient, mm.teeth_ambient], dtype=np.float32),
                   (no_teeth if teeth is None else teeth.rgbw).numpy(), np.array(TEETH_UV_TILE, dtype=np.float32),
                   skin.numpy(), mouth.numpy(), own.numpy(), seen.numpy())
        return skin, mouth, own, (seen if photo_weight is not None else None)

    def vertex_normals(self, vertices_cam: Tensor) -> Tensor:
        """[V, 3] unit normals of the skin surface."""
        return vertex_normals(vertices_cam, self.skin_tri)


def _compiled_path(vertices_cam: Tensor, tex: Tensor, shading: Tensor | None, photo_weight: Tensor | None,
                   teeth: PhotoTeeth | None) -> bool:
    """Whether `FaceRenderer.render` may shade with the compiled kernel: every input float32 on the
    CPU and none requiring grad (else the differentiable torch path runs)."""
    ts = [t for t in (vertices_cam, tex, shading, photo_weight, None if teeth is None else teeth.rgbw) if t is not None]
    grad = torch.is_grad_enabled() and any(t.requires_grad for t in ts)
    return not grad and all(t.device.type == "cpu" and t.dtype == torch.float32 for t in ts)


def _window_rgba(covered_kind: Tensor, kind: Tensor, skin: Tensor, mouth: Tensor, *, compiled: bool) -> Tensor:
    """[h, w, 4] colour (skin where `kind` is 0, the mouth's elsewhere, 0 where the raster's
    `covered_kind` is -1) and coverage of a window; `compiled`: in one numba pass (CPU, float32, no grad)."""
    if compiled:
        from affectsynth._face_kernels import face_rgba  # noqa: PLC0415  (numba import is slow)

        rgba = torch.empty(*kind.shape, 4)
        face_rgba(covered_kind.contiguous().numpy(), kind.contiguous().numpy(), skin.contiguous().numpy(),
                  mouth.contiguous().numpy(), rgba.numpy())
        return rgba
    covered = covered_kind >= 0
    color = torch.where((kind == 0)[..., None], skin, mouth) * covered[..., None]
    return torch.cat([color, covered[..., None].to(color.dtype)], -1)


def _compiled_pixels(*images: Tensor | None) -> bool:
    """Whether the mouth's pixel passes (`_close_teeth_gaps`, `_close_slits`) may run compiled: every
    image given is a contiguous float32 CPU tensor and none requires grad."""
    ts = [t for t in images if t is not None]
    grad = torch.is_grad_enabled() and any(t.requires_grad for t in ts)
    return not grad and all(t.device.type == "cpu" and t.dtype == torch.float32 and t.is_contiguous() for t in ts)


def _bounding_box(mask: Tensor, *, margin: int = 0) -> tuple[slice, slice] | None:
    """(rows, cols) slices of the [h, w] mask's True pixels grown by `margin` (clipped at 0; slices
    clip at the far end themselves), or None for an empty mask."""
    rows, cols = mask.any(1).nonzero(), mask.any(0).nonzero()
    if rows.numel() == 0:
        return None
    return (slice(max(0, int(rows[0]) - margin), int(rows[-1]) + margin + 1),
            slice(max(0, int(cols[0]) - margin), int(cols[-1]) + margin + 1))


def _close_teeth_gaps(mouth: Tensor, kind: Tensor, gap_px: int, *, shade: float = 1.0,
                      own: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """Fill mouth-interior pixels lying in gaps of at most `gap_px` between teeth pixels (a
    morphological closing of the teeth mask) with the mean colour of the teeth around them,
    times `shade` where those teeth are material teeth (an interproximal line).

    Args:
        mouth: [h, w, 3] mouth colours.
        kind: [h, w] int64 material kind (1 = teeth, 2 gums/tongue, 3 socket, 0 skin).
        gap_px: widest gap filled, pixels.
        shade: factor of the filled colour between material teeth.
        own: [h, w] float in [0, 1], how far each teeth pixel shows the photo's own teeth (the
            photo's colour is kept there, unshaded); None = all material.

    Returns:
        (mouth [h, w, 3], kind [h, w]): filled pixels become teeth. On the CPU (float32, nothing
        requiring grad) one compiled pass computes them (the same sums, in another order).
    """
    if _compiled_pixels(mouth, own):
        from affectsynth._face_kernels import close_teeth_gaps_  # noqa: PLC0415  (numba import is slow)

        mouth, kind = mouth.clone(), kind.to(torch.int64).clone(memory_format=torch.contiguous_format)
        close_teeth_gaps_(mouth.numpy(), kind.numpy(), (torch.zeros(0, 0) if own is None else own.contiguous()).numpy(),
                          gap_px, np.float32(shade))
        return mouth, kind
    box = _bounding_box(kind == 1, margin=gap_px)  # only the teeth's box plus the gap can change
    if box is None:
        return mouth, kind
    sub_own = None if own is None else own[box]
    sub_mouth, sub_kind = _close_teeth_gaps_in(mouth[box], kind[box], gap_px, shade, sub_own)
    mouth, kind = mouth.clone(), kind.clone()
    mouth[box], kind[box] = sub_mouth, sub_kind
    return mouth, kind


def _close_teeth_gaps_in(mouth: Tensor, kind: Tensor, gap_px: int, shade: float = 1.0,
                         own: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """`_close_teeth_gaps` on a crop that holds all teeth pixels with a `gap_px` margin."""
    F = torch.nn.functional
    teeth = (kind == 1).to(mouth.dtype)[None, None]
    size = 2 * gap_px + 1
    dilated = F.max_pool2d(teeth, size, stride=1, padding=gap_px)
    # erosion = complement of the dilated complement; outside the window counts as "not teeth"
    closed = 1.0 - F.max_pool2d(F.pad(1.0 - dilated, (gap_px,) * 4, value=1.0), size, stride=1)
    closed = closed[0, 0] > 0.5
    gap = closed & (kind >= 2)  # gums, tongue or socket showing between teeth
    if not bool(gap.any()):
        return mouth, kind
    w = teeth[0, 0][..., None]
    own = torch.zeros_like(w[..., 0]) if own is None else own.to(mouth.dtype)
    chans = torch.cat([mouth, own[..., None]], -1)
    ones = torch.ones(1, 1, size, size, dtype=mouth.dtype, device=mouth.device)
    num = F.conv2d((chans * w).permute(2, 0, 1)[:, None], ones, padding=gap_px)[:, 0].permute(1, 2, 0)
    den = F.conv2d(teeth, ones, padding=gap_px)[0, 0][..., None]
    mean = num / den.clamp_min(1e-6)
    filled = mean[..., :3] * (shade + (1.0 - shade) * mean[..., 3:].clamp(0, 1))
    mouth = torch.where(gap[..., None], filled, mouth)
    return mouth, torch.where(gap, torch.ones_like(kind), kind)


def _vertical_runs(m: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Per pixel of the [h, w] bool mask `m`: (run length, row above the run, row below the run),
    int64 [h, w] each; the rows are -1 / h where the run touches the top / bottom edge."""
    h = m.shape[0]
    row = torch.arange(h, device=m.device)[:, None].expand_as(m)
    above = torch.cummax(torch.where(m, torch.full_like(row, -1), row), dim=0).values
    below = torch.flip(torch.cummin(torch.flip(torch.where(m, torch.full_like(row, h), row), [0]), dim=0).values, [0])
    return below - above - 1, above, below


def _row_mean(x: Tensor, m: Tensor) -> Tensor:
    """[h, w] mean of `x` over each pixel and its left/right neighbours inside the bool mask `m`."""
    F = torch.nn.functional
    mf = m.to(x.dtype)[None, None]

    def pool(y: Tensor) -> Tensor:
        return F.avg_pool2d(F.pad(y, (1, 1, 0, 0)), (1, 3), stride=1)[0, 0]

    return pool(x[None, None] * mf) / pool(mf).clamp_min(1e-6)


def _opening_thickness(mask: Tensor, min_px: int) -> Tensor:
    """[h, w] in [0, 1] per pixel of `mask`: 0 where its vertical run is shorter than `min_px`,
    rising to 1 at twice that, smoothed along rows (no dashes where a slanted slit's run length
    alternates); 1 outside the mask.

    The ramp is the fraction of vertical openings of heights `min_px` .. `2 min_px` that keep the
    pixel (an opening of height h keeps the runs of at least h pixels), from each pixel's run length.
    """
    out = torch.ones(mask.shape, dtype=torch.float32, device=mask.device)
    box = _bounding_box(mask)
    if box is None:
        return out
    m = mask[box]
    run = _vertical_runs(m)[0].to(torch.float32)
    frac = ((run - min_px + 1) / (min_px + 1)).clamp(0.0, 1.0)
    out[box] = torch.where(m, _row_mean(frac, m), out[box])
    return out


def _close_slits(mouth: Tensor, skin: Tensor, mask: Tensor, min_px: int, *, shadow: Tensor, lip_line: float) -> Tensor:
    """Close the thin openings between the lips in an image.

    Pixels of `mask` whose vertical run is shorter than `min_px` take the colour of the lips
    above and below (linearly across the run) times `lip_line`; runs of `min_px` .. `min_px + 2`
    fade from `shadow` to `mouth` (a short ramp: a longer one blends teeth into a grey band).
    Both weights are smoothed along rows.

    Args:
        mouth: [h, w, 3] mouth-interior colours.
        skin: [h, w, 3] skin (lip) colours of the same window.
        mask: [h, w] bool, pixels showing the mouth interior.
        min_px: thinnest opening kept open, pixels.
        shadow: [3] colour of a thin opening.
        lip_line: factor of the lip colour along the closed lips' meeting line.

    Returns:
        [h, w, 3] colours: `mouth` outside `mask`. On the CPU (float32, nothing requiring grad)
        one compiled pass computes them.
    """
    if _compiled_pixels(mouth, skin, shadow):
        from affectsynth._face_kernels import close_slits_  # noqa: PLC0415  (numba import is slow)

        out = mouth.clone()
        close_slits_(out.numpy(), skin.contiguous().numpy(), mask.to(torch.int64).numpy(), min_px,
                     shadow.contiguous().numpy(), np.float32(lip_line))
        return out
    box = _bounding_box(mask, margin=1)
    if box is None:
        return mouth
    m = mask[box]
    run, above, below = _vertical_runs(m)
    h = m.shape[0]
    sk = skin[box]
    col = torch.arange(m.shape[1], device=m.device)[None].expand_as(m)
    top = sk[above.clamp(0, h - 1), col]
    bottom = sk[below.clamp(0, h - 1), col]
    row = torch.arange(h, device=m.device)[:, None].expand_as(m)
    t = ((row - above).to(sk.dtype) / (run + 1).clamp_min(1).to(sk.dtype))[..., None]
    lips = (top + (bottom - top) * t) * lip_line
    runf = run.to(torch.float32)
    closed = _row_mean((runf < min_px).to(torch.float32), m)[..., None]
    open_ = _row_mean(((runf - min_px + 1) / 3.0).clamp(0.0, 1.0), m)[..., None]
    sub = mouth[box]
    opened = shadow + (sub - shadow) * open_
    blended = lips * closed + opened * (1.0 - closed)
    out = mouth.clone()
    out[box] = torch.where(m[..., None], blended.to(mouth.dtype), sub)
    return out
