"""Render the expression model to PNGs: categories x intensities, a VA wheel, the VA layout.

Usage:
    python scripts/show_expressions.py --out scratch/blendshapes [--lib LIB.npz] [--size 256]

Writes ``categories.png`` (every category at intensity 0.25 / 0.5 / 1.0), ``variants.png``
(every category x EMFACS variant at the apex, full size over the same tiles as 48 px
grayscale, the FER2013 size, shown enlarged 3x without smoothing), ``va_wheel.png``
(faces at 12 points on the unit circle around a neutral centre) and ``va_layout.png`` (the
anchors in the VA plane with the dominant category of each VA point as colour).
The face mesh comes from ``fitting/data/face_model.npz`` (or ``--mesh`` pointing at the
ICT-FaceKit npz). Frontal orthographic view, Lambert shading with interpolated vertex
normals, rasterized by ``affectsynth.render.rasterize`` / ``interpolate``; ``--painter`` uses a
PIL painter's-algorithm fallback instead (flat shading, possible sorting artefacts).
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from affectsynth.blendshapes import VA, Expression, ExpressionModel

CATS = ("neutral", "happiness", "sadness", "surprise", "fear", "anger", "disgust", "contempt")
COLORS = {
    "M_Face": (0.86, 0.70, 0.60), "M_Teeth": (0.95, 0.93, 0.88),
    "M_GumsTongue": (0.75, 0.35, 0.38), "M_BackHead": (0.30, 0.18, 0.16),
}


def load_mesh(path: Path):
    d = np.load(path, allow_pickle=False)
    deltas = d["expression_basis"] if "expression_basis" in d.files else d["expression_deltas"]
    return (d["neutral"].astype(np.float64), deltas.astype(np.float64), [str(x) for x in d["expression_names"]],
            d["triangles"], d["triangle_material"], [str(x) for x in d["material_names"]])


class Painter:
    """Frontal orthographic Lambert view of one mesh topology."""

    def __init__(self, tri, tri_mat, mat_names, size=256, box=(-9.5, 9.5, -13.0, 8.0)):
        self.tri, self.size, self.box = tri, size, box
        self.col = np.array([COLORS.get(mat_names[m], (0.2, 0.05, 0.05)) for m in tri_mat])

    def __call__(self, verts: np.ndarray) -> Image.Image:
        x0, x1, y0, y1 = self.box
        s = self.size / max(x1 - x0, y1 - y0)
        p = verts[self.tri]  # [T, 3, 3]
        n = np.cross(p[:, 1] - p[:, 0], p[:, 2] - p[:, 0])
        n /= np.linalg.norm(n, axis=1, keepdims=True) + 1e-12
        keep = n[:, 2] > 0  # front-facing (CCW seen from +z)
        light = np.array([0.3, 0.4, 1.0]) / np.linalg.norm([0.3, 0.4, 1.0])
        shade = 0.25 + 0.75 * np.clip(n @ light, 0, 1)
        order = np.argsort(p[:, :, 2].mean(1))
        img = Image.new("RGB", (self.size, self.size), (25, 25, 30))
        dr = ImageDraw.Draw(img)
        u = (p[:, :, 0] - x0) * s
        v = (y1 - p[:, :, 1]) * s
        for t in order:
            if not keep[t]:
                continue
            c = tuple(int(255 * min(1.0, x)) for x in self.col[t] * shade[t])
            dr.polygon([(u[t, 0], v[t, 0]), (u[t, 1], v[t, 1]), (u[t, 2], v[t, 2])], fill=c)
        return img


class Raster:
    """The same view through affectsynth.render (z-buffered, smooth-shaded)."""

    def __init__(self, tri, tri_mat, mat_names, size=256, box=(-9.5, 9.5, -13.0, 8.0)):
        import torch

        self.torch = torch
        self.tri = torch.as_tensor(tri, dtype=torch.int32)
        self.tri_np = np.asarray(tri, dtype=np.int64)
        self.size, self.box = size, box
        self.col = np.array([COLORS.get(mat_names[m], (0.2, 0.05, 0.05)) for m in tri_mat])

    def __call__(self, verts: np.ndarray) -> Image.Image:
        from affectsynth.render import interpolate, rasterize

        torch = self.torch
        x0, x1, y0, y1 = self.box
        half = max(x1 - x0, y1 - y0) / 2
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        pos = np.stack([(verts[:, 0] - cx) / half, -(verts[:, 1] - cy) / half,
                        -verts[:, 2] / 40.0, np.ones(len(verts))], axis=1)
        p = verts[self.tri_np]
        fn = np.cross(p[:, 1] - p[:, 0], p[:, 2] - p[:, 0])
        vn = np.zeros_like(verts)
        for k in range(3):
            np.add.at(vn, self.tri_np[:, k], fn)
        vn /= np.linalg.norm(vn, axis=1, keepdims=True) + 1e-12
        pos_t = torch.as_tensor(pos, dtype=torch.float32)[None]
        rast, _ = rasterize(pos_t, self.tri, (self.size, self.size))
        nrm, _ = interpolate(torch.as_tensor(vn, dtype=torch.float32)[None], rast, self.tri)
        nrm = nrm[0].numpy()
        nrm /= np.linalg.norm(nrm, axis=-1, keepdims=True) + 1e-12
        tid = rast[0, ..., 3].numpy().astype(np.int64)
        light = np.array([0.3, 0.4, 1.0]) / np.linalg.norm([0.3, 0.4, 1.0])
        shade = 0.25 + 0.75 * np.clip(nrm @ light, 0, 1)
        img = np.empty((self.size, self.size, 3))
        img[:] = np.array([25, 25, 30]) / 255
        cov = tid > 0
        img[cov] = self.col[tid[cov] - 1] * shade[cov, None]
        return Image.fromarray((np.clip(img, 0, 1) * 255).astype(np.uint8))


def deform(neutral, deltas, names, weights: dict) -> np.ndarray:
    w = np.array([weights.get(nm, 0.0) for nm in names])
    return neutral + np.einsum("s,svc->vc", w, deltas)


def label(img: Image.Image, text: str) -> Image.Image:
    dr = ImageDraw.Draw(img)
    dr.text((4, 4), text, fill=(255, 255, 0), font=ImageFont.load_default())
    return img


def thumb48(img: Image.Image, size: int) -> Image.Image:
    """The face region at 48 px grayscale (what a FER2013-sized classifier sees), enlarged to ``size``."""
    w, h = img.size
    face = img.crop((int(0.12 * w), int(0.12 * h), int(0.88 * w), int(0.88 * h)))
    g = face.convert("L").resize((48, 48), Image.LANCZOS)
    return g.resize((size, size), Image.NEAREST).convert("RGB")


def grid(images, cols):
    w, h = images[0].size
    rows = math.ceil(len(images) / cols)
    out = Image.new("RGB", (w * cols, h * rows), (0, 0, 0))
    for i, im in enumerate(images):
        out.paste(im, ((i % cols) * w, (i // cols) * h))
    return out


def layout_plot(model: ExpressionModel, size=512) -> Image.Image:
    cats = [c for c in model.categories if c != "neutral"]
    palette = [(230, 190, 40), (60, 110, 220), (240, 120, 30), (150, 60, 200), (210, 40, 40),
               (60, 160, 60), (140, 100, 60)]
    protos = np.array([model.weights_array(Expression(c)) for c in cats])
    img = Image.new("RGB", (size, size), (255, 255, 255))
    px = np.asarray(img).copy()
    step = 4
    for i in range(0, size, step):
        for j in range(0, size, step):
            v, a = 2 * (j + 0.5) / size - 1, 1 - 2 * (i + 0.5) / size
            if v * v + a * a > 1:
                continue
            w = model.weights_array(VA(v, a))
            nrm = np.linalg.norm(w)
            if nrm < 1e-6:
                continue
            sim = protos @ w / (np.linalg.norm(protos, axis=1) * nrm + 1e-12)
            k = int(np.argmax(sim))
            r = min(1.0, math.hypot(v, a))
            c = np.array(palette[k % len(palette)]) * (0.25 + 0.75 * r) + 255 * (0.75 - 0.75 * r)
            px[i:i + step, j:j + step] = np.clip(c, 0, 255)
    img = Image.fromarray(px)
    dr = ImageDraw.Draw(img)
    dr.ellipse([0, 0, size - 1, size - 1], outline=(0, 0, 0))
    dr.line([(size / 2, 0), (size / 2, size)], fill=(120, 120, 120))
    dr.line([(0, size / 2), (size, size / 2)], fill=(120, 120, 120))
    for c, (v, a) in model.va_anchors.items():
        x, y = (v + 1) / 2 * size, (1 - a) / 2 * size
        dr.ellipse([x - 5, y - 5, x + 5, y + 5], fill=(0, 0, 0))
        text = f"{c} ({v:.2f},{a:.2f})"
        tx = x + 7 if v < 0.3 else x - 7 - 6 * len(text)
        dr.text((tx, y - 6), text, fill=(0, 0, 0), font=ImageFont.load_default())
    if model.va_grid is None:
        from affectsynth.blendshapes.va import CALM_ANCHOR

        x, y = (CALM_ANCHOR[0] + 1) / 2 * size, (1 - CALM_ANCHOR[1]) / 2 * size
        dr.ellipse([x - 5, y - 5, x + 5, y + 5], outline=(0, 0, 0), width=2)
        dr.text((x - 150, y - 14), "calm anchor (zero prototype)", fill=(0, 0, 0))
    dr.text((size - 60, size / 2 + 4), "valence", fill=(0, 0, 0))
    dr.text((size / 2 + 4, 4), "arousal", fill=(0, 0, 0))
    return img


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("scratch/blendshapes"))
    ap.add_argument("--lib", type=Path, default=None, help="expression library npz (default: shipped model)")
    ap.add_argument("--mesh", type=Path, default=Path("fitting/data/face_model.npz"))
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--only", default=None, help="comma-separated categories for a quick look")
    ap.add_argument("--painter", action="store_true", help="PIL painter's fallback instead of affectsynth.render")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    model = ExpressionModel.load(args.lib) if args.lib else ExpressionModel.default()
    neutral, deltas, names, tri, tri_mat, mats = load_mesh(args.mesh)
    paint = (Painter if args.painter else Raster)(tri, tri_mat, mats, size=args.size)

    cats = args.only.split(",") if args.only else [c for c in CATS if c in model.categories]
    tiles = []
    for c in cats:
        for i in (0.25, 0.5, 1.0):
            img = paint(deform(neutral, deltas, names, model.weights(Expression(c, i))))
            tiles.append(label(img, f"{c} {i}"))
    grid(tiles, 3 if args.only else 6).save(args.out / "categories.png")

    keys = [(c, v) for c in cats for v in model.variants(c)]
    full = [label(paint(deform(neutral, deltas, names, model.weights(Expression(c, 1.0, v)))), f"{c}/{v}")
            for c, v in keys]
    small = [thumb48(paint(deform(neutral, deltas, names, model.weights(Expression(c, 1.0, v)))), args.size)
             for c, v in keys]
    cols = min(len(keys), 6)
    top, bottom = grid(full, cols), grid(small, cols)
    both = Image.new("RGB", (top.width, top.height + bottom.height))
    both.paste(top, (0, 0))
    both.paste(bottom, (0, top.height))
    both.save(args.out / "variants.png")

    if args.only:
        return
    wheel_size = args.size
    canvas = Image.new("RGB", (wheel_size * 5, wheel_size * 5), (0, 0, 0))
    for k in range(12):
        ang = 2 * math.pi * k / 12
        v, a = math.cos(ang), math.sin(ang)
        img = label(paint(deform(neutral, deltas, names, model.weights(VA(v, a)))), f"v={v:.2f} a={a:.2f}")
        cx, cy = 2 + 2 * v, 2 - 2 * a
        canvas.paste(img, (int(round(cx * wheel_size)), int(round(cy * wheel_size))))
    canvas.paste(label(paint(neutral), "origin"), (2 * wheel_size, 2 * wheel_size))
    canvas.save(args.out / "va_wheel.png")
    layout_plot(model).save(args.out / "va_layout.png")
    print(args.out)


if __name__ == "__main__":
    main()
