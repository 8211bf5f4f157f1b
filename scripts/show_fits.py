"""Picture check of landmark fits on real photos.

Usage:
    python scripts/show_fits.py [OUT_DIR] [--photo PATH ...]

Default photos: Tom_Cruise_avp_2014_4.jpg, bald_guys.jpg and 2008_001322.jpg from
../shared/assets/dev-photos, and scikit-image's astronaut. For each photo writes
OUT_DIR/<stem>_fit.png, three panels side by side (cropped to the faces):

1. the photo with the detected landmarks (green dots), the fitted model's projected landmarks
   (red dots) and the fitted mesh's wireframe (cyan: a grid of UV iso-lines on the skin, `--grid`);
2. a Lambert-shaded rendering of the neutral reconstruction (same identity, zero expression, same
   pose and camera) over a dimmed photo;
3. the photo alone.

Rendering uses `affectsynth.render` (rasterize + interpolate) with the camera conventions of
`affectsynth.render.camera`; all faces of a photo are rendered in one z-buffered pass.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageOps

from affectsynth.fitting import FaceModel, MediaPipeDetector, fit_image
from affectsynth.render import interpolate, rasterize
from affectsynth.render.camera import projection_matrix, to_clip
from affectsynth.render.mesh import vertex_normals

ROOT = Path(__file__).resolve().parents[1]
DEV_PHOTOS = ROOT.parent / "shared" / "assets" / "dev-photos"
DEFAULT_PHOTOS = ("Tom_Cruise_avp_2014_4.jpg", "bald_guys.jpg", "2008_001322.jpg", "astronaut")


def _load(name: str) -> tuple[str, np.ndarray]:
    if name == "astronaut":
        from skimage import data

        return "astronaut", data.astronaut()
    path = Path(name) if Path(name).is_file() else DEV_PHOTOS / name
    with Image.open(path) as im:
        return path.stem, np.asarray(ImageOps.exif_transpose(im).convert("RGB"))


def _project(points_cam: torch.Tensor, cam) -> np.ndarray:
    p = points_cam.detach().double().numpy()
    return np.c_[cam.fx * p[:, 0] / p[:, 2] + cam.cx, cam.fy * p[:, 1] / p[:, 2] + cam.cy]


def _uv_grid_segments(model: FaceModel, tri_ids: torch.Tensor, lines: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Wireframe as UV iso-lines: where each skin triangle crosses u = k / lines or v = k / lines.

    Returns (triangle index into `tri_ids` [S], corner weights of the two segment ends [S, 2, 3]), plus the
    triangles' vertex ids [T', 3]; a coherent grid reads better than a random subset of triangles.
    """
    tri = model.triangles[tri_ids].long().numpy()
    uv = model.uv[model.triangle_uv[tri_ids].long()].numpy() * lines  # [T', 3, 2]
    seg_tri, seg_w = [], []
    edges = ((0, 1), (1, 2), (2, 0))
    for axis in (0, 1):
        s = uv[..., axis]
        level = np.floor(s.max(1))
        crosses = np.floor(s.min(1)) < level
        ends = []
        for a, b in edges:
            da, db = s[:, a] - level, s[:, b] - level
            hit = (da * db < 0) | ((da == 0) ^ (db == 0))
            t = np.where(hit, da / np.where(da - db == 0, 1, da - db), 0)
            w = np.zeros((len(s), 3))
            w[:, a], w[:, b] = 1 - t, t
            ends.append((hit, w))
        for i in np.nonzero(crosses)[0]:
            pts = [w[i] for hit, w in ends if hit[i]]
            if len(pts) >= 2:
                seg_tri.append(i)
                seg_w.append(pts[:2])
    return np.array(seg_tri), np.array(seg_w), tri


def _overlay(image: np.ndarray, model: FaceModel, fits, lines: int) -> Image.Image:
    """Photo + fitted-mesh wireframe (UV grid on the skin) + detected (green) / fitted (red) landmarks."""
    im = Image.fromarray(image).convert("RGB")
    draw = ImageDraw.Draw(im, "RGBA")
    skin = torch.nonzero(model.material_mask("M_Face")).flatten()
    seg_tri, seg_w, tri = _uv_grid_segments(model, skin, lines)
    for fit in fits:
        verts = model.reconstruct(fit)
        uv = _project(verts, fit.camera)
        v = verts.detach().double().numpy()
        # cull back-facing triangles (their wireframe would show the far side of the head)
        t = tri[seg_tri]
        n = np.cross(v[t[:, 1]] - v[t[:, 0]], v[t[:, 2]] - v[t[:, 0]])
        front = (n * v[t[:, 0]]).sum(1) < 0
        ends = np.einsum("sec,scd->sed", seg_w, uv[t])  # [S, 2, 2] pixels
        width = max(1, round(fit.interocular_px / 150))
        for (x0, y0), (x1, y1) in ends[front]:
            draw.line([(x0, y0), (x1, y1)], fill=(0, 220, 255, 170), width=width)
        r = max(1.0, fit.interocular_px / 100)
        model_lm = _project(model.landmark_points(verts[None], fit.landmark_kind)[0], fit.camera)
        for x, y in fit.landmarks.numpy()[:468]:
            draw.ellipse([x - r, y - r, x + r, y + r], fill=(40, 255, 40, 230))
        for x, y in model_lm:
            draw.ellipse([x - r * 0.6, y - r * 0.6, x + r * 0.6, y + r * 0.6], fill=(255, 40, 40, 230))
    return im


def _neutral_render(image: np.ndarray, model: FaceModel, fits) -> Image.Image:
    """Lambert-shaded neutral reconstructions (light from the camera) over the dimmed photo."""
    h, w = image.shape[:2]
    cam = fits[0].camera
    tri_one = model.triangles.long()
    verts, tris, normals = [], [], []
    for i, fit in enumerate(fits):
        v = model.reconstruct(fit, neutral=True).detach()
        verts.append(v)
        tris.append(tri_one + i * model.num_vertices)
        normals.append(vertex_normals(v, model.triangles))
    verts_all = torch.cat(verts)
    tri_all = torch.cat(tris).to(torch.int32)
    proj = projection_matrix(cam.fx, cam.fy, cam.cx, cam.cy, w, h, near=1.0, far=1000.0)
    clip = to_clip(verts_all[None], proj)
    rast, _ = rasterize(clip, tri_all, (h, w), grad_db=False)
    attrs = torch.cat([torch.cat(normals), verts_all], -1)[None]  # normals, camera-space positions
    out, _ = interpolate(attrs, rast, tri_all)
    n = torch.nn.functional.normalize(out[0, ..., :3], dim=-1)
    view = -torch.nn.functional.normalize(out[0, ..., 3:], dim=-1)  # towards the camera
    lambert = (n * view).sum(-1).abs()
    # a second light from the upper left to show relief
    key = torch.nn.functional.normalize(torch.tensor([-0.4, -0.5, -1.0]), dim=0)
    lambert = 0.55 * lambert + 0.45 * (n * -key).sum(-1).clamp_min(0) * 1.0
    shade = (0.15 + 0.85 * lambert)[..., None] * torch.tensor([0.93, 0.85, 0.78])
    covered = (rast[0, ..., 3] > 0)[..., None]
    bg = torch.from_numpy(np.array(image)).float() / 255 * 0.35
    img = torch.where(covered, shade, bg)
    return Image.fromarray((img.clamp(0, 1) * 255).round().to(torch.uint8).numpy())


def _crop_box(fits, w: int, h: int) -> tuple[int, int, int, int]:
    boxes = np.array([f.bbox for f in fits])
    x0, y0 = boxes[:, :2].min(0)
    x1, y1 = boxes[:, 2:].max(0)
    m = 0.35 * max(x1 - x0, y1 - y0)
    return int(max(0, x0 - m)), int(max(0, y0 - m)), int(min(w, x1 + m)), int(min(h, y1 + m))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out_dir", nargs="?", type=Path, default=ROOT / "scratch" / "fits")
    parser.add_argument("--photo", action="append", default=None, help="photo path, dev-photo name or 'astronaut'")
    parser.add_argument("--grid", type=int, default=60, help="wireframe: UV grid lines per axis on the skin")
    parser.add_argument("--panel-height", type=int, default=700, help="height of each panel, pixels")
    args = parser.parse_args(argv)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    model = FaceModel.default()
    detector = MediaPipeDetector()
    for name in args.photo or DEFAULT_PHOTOS:
        stem, image = _load(name)
        fits = fit_image(image, model=model, detector=detector)
        if not fits:
            print(f"{stem}: no face found")
            continue
        h, w = image.shape[:2]
        box = _crop_box(fits, w, h)
        panels = [_overlay(image, model, fits, args.grid), _neutral_render(image, model, fits), Image.fromarray(image)]
        panels = [p.crop(box) for p in panels]
        scale = args.panel_height / panels[0].height
        size = (max(1, round(panels[0].width * scale)), args.panel_height)
        panels = [p.resize(size, Image.LANCZOS) for p in panels]
        sheet = Image.new("RGB", (size[0] * len(panels), size[1]))
        for i, p in enumerate(panels):
            sheet.paste(p, (i * size[0], 0))
        path = args.out_dir / f"{stem}_fit.png"
        sheet.save(path)
        errs = [100 * f.reprojection_error_px / f.interocular_px for f in fits]
        poses = ", ".join("(%.0f, %.0f, %.0f)" % f.pose_deg for f in fits[:3])
        top = sorted(fits[0].expression_dict().items(), key=lambda kv: -kv[1])[:5]
        print(f"{path}: {len(fits)} face(s), error {np.mean(errs):.2f}% IOD mean (max {np.max(errs):.2f}); "
              f"pose yaw/pitch/roll {poses}; largest face's top weights "
              + ", ".join(f"{k} {v:.2f}" for k, v in top))
    detector.close()


if __name__ == "__main__":
    main()
