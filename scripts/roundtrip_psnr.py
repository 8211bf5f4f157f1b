"""Round-trip PSNR: re-render each fitted face with its own expression and compare with the photo.

For every face in the dev photos (../shared/assets/dev-photos/*.jpg) and scikit-image's astronaut:
fit, prepare (unwrap the texture), render the fit unchanged (`FaceRenderer.render`, raw colour before
compositing) and measure PSNR between render and photo inside the skin mask: rendered coverage > 0.5,
skin triangles only (mouth interior, teeth and the eye holes excluded), and outside the photo's inner-lip
polygon. Also, for diagnosis, the same with a 1024 texture, and an "ideal" render that samples the photo
directly at each pixel's projected surface point (no texture: the loss of the texture path alone).

Usage:
    OMP_NUM_THREADS=1 python scripts/roundtrip_psnr.py [--out scratch/g] [--max-faces N]
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from affectsynth.prepare import _mouth_opening_mask
from affectsynth.render import interpolate
from affectsynth.render.camera import project_points
from affectsynth.synthesizer import SynthSettings, Synthesizer

PHOTOS = Path(__file__).resolve().parents[2] / "shared" / "assets" / "dev-photos"


def psnr(a: np.ndarray, b: np.ndarray, mask: np.ndarray) -> float:
    """PSNR (dB, peak 1) of float images [h, w, 3] in [0, 1] over a [h, w] bool mask."""
    mse = float(((a - b) ** 2)[mask].mean())
    return 10 * math.log10(1.0 / max(mse, 1e-12))


def skin_mask_and_uvpix(synth: Synthesizer, prepared, window) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Skin-only mask of the window (no antialias), and per-pixel projected photo position of the surface."""
    r = synth.renderer
    cam = prepared.fit.camera
    raster = r.rasterize_window(prepared.vertices, cam, window)
    p, _ = interpolate(prepared.vertices[None], raster.rast, r.tri)
    pix = project_points(p[0], cam)
    tid = raster.rast[0, ..., 3].long() - 1
    return (raster.kind == 0).numpy(), pix.numpy(), tid.numpy()


def bilinear(img: np.ndarray, pix: np.ndarray) -> np.ndarray:
    """Sample [H, W, 3] at continuous pixel coordinates [.., 2] (pixel centres at +0.5), clamped."""
    H, W = img.shape[:2]
    x = np.clip(pix[..., 0] - 0.5, 0, W - 1)
    y = np.clip(pix[..., 1] - 0.5, 0, H - 1)
    x0 = np.clip(np.floor(x).astype(int), 0, W - 2)
    y0 = np.clip(np.floor(y).astype(int), 0, H - 2)
    fx, fy = (x - x0)[..., None], (y - y0)[..., None]
    return ((1 - fx) * (1 - fy) * img[y0, x0] + fx * (1 - fy) * img[y0, x0 + 1]
            + (1 - fx) * fy * img[y0 + 1, x0] + fx * fy * img[y0 + 1, x0 + 1])


def measure(synth: Synthesizer, image: np.ndarray, fit, *, big: Synthesizer | None = None) -> dict:
    """Round-trip numbers of one face."""
    prepared = synth.prepare(image, fit)
    r = synth.renderer
    cam = prepared.fit.camera
    pix = project_points(prepared.vertices, cam)
    window = r.window_for(pix[torch.unique(r.tri.long())], (cam.width, cam.height))
    rend = r.render(prepared.vertices, prepared.texture, cam, window, skin_color=prepared.skin_color)
    x0, y0, w, h = window
    photo = image[y0:y0 + h, x0:x0 + w].astype(np.float32) / 255.0
    color = rend.color.numpy()
    skin, surf_pix, _ = skin_mask_and_uvpix(synth, prepared, window)
    mask = skin & (rend.coverage.numpy() > 0.5)
    lips = _mouth_opening_mask(prepared.fit, image.shape[:2])
    if lips is not None:
        mask &= ~lips[y0:y0 + h, x0:x0 + w]
    # interior: drop a 2 px band at the silhouette (antialias blends background there)
    from scipy.ndimage import binary_erosion

    interior = binary_erosion(mask, iterations=2)
    ideal = bilinear(image.astype(np.float32) / 255.0, surf_pix)
    out = {
        "res": synth.texture_resolution(prepared.fit),
        "face_px": max(fit.bbox[2] - fit.bbox[0], fit.bbox[3] - fit.bbox[1]),
        "psnr": psnr(color, photo, mask),
        "psnr_interior": psnr(color, photo, interior),
        "psnr_ideal": psnr(ideal, photo, mask),
        "n": int(mask.sum()),
        "panel": (photo, color, mask),
    }
    if big is not None:
        pb = big.prepare(image, fit)
        rb = big.renderer.render(pb.vertices, pb.texture, cam, window, skin_color=pb.skin_color)
        out["psnr_1024"] = psnr(rb.color.numpy(), photo, mask)
    return out


def load_photos() -> list[tuple[str, np.ndarray]]:
    import skimage.data

    out = [("astronaut", np.asarray(skimage.data.astronaut()))]
    for p in sorted(PHOTOS.glob("*.jpg")):
        out.append((p.stem, np.asarray(Image.open(p).convert("RGB"))))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / "scratch" / "g"))
    ap.add_argument("--max-faces", type=int, default=100)
    ap.add_argument("--no-big", action="store_true", help="skip the 1024-texture comparison")
    args = ap.parse_args()
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    synth = Synthesizer()
    big = None if args.no_big else Synthesizer(settings=SynthSettings(texture_min=1024, texture_max=1024))
    rows = []
    for name, image in load_photos():
        fits = synth.fit(image)
        for k, fit in enumerate(fits[: args.max_faces]):
            m = measure(synth, image, fit, big=big)
            m["name"] = f"{name}#{k}"
            rows.append(m)
            print(f"{m['name']:28s} face {m['face_px']:6.1f}px tex {m['res']:5d}  PSNR {m['psnr']:6.2f} dB"
                  f"  interior {m['psnr_interior']:6.2f}  tex1024 {m.get('psnr_1024', float('nan')):6.2f}"
                  f"  ideal(no texture) {m['psnr_ideal']:6.2f}  n={m['n']}", flush=True)
    vals = np.array([m["psnr"] for m in rows])
    print(f"\n{len(rows)} faces: mean {vals.mean():.2f} dB, median {np.median(vals):.2f} dB, min {vals.min():.2f}, "
          f">= 30 dB: {(vals >= 30).sum()}/{len(vals)}")
    for key in ("psnr_interior", "psnr_1024", "psnr_ideal"):
        v = np.array([m.get(key, np.nan) for m in rows])
        print(f"  {key:14s} mean {np.nanmean(v):.2f} median {np.nanmedian(v):.2f}")
    worst = min(rows, key=lambda m: m["psnr"])
    photo, color, mask = worst["panel"]
    diff = np.clip(np.abs(color - photo) * 4, 0, 1) * mask[..., None]
    panel = np.concatenate([photo, color * mask[..., None] + photo * (~mask[..., None]), diff], axis=1)
    scale = max(1, 256 // photo.shape[0])
    img = Image.fromarray((panel * 255).round().astype(np.uint8))
    img = img.resize((img.width * scale, img.height * scale), Image.NEAREST)
    path = out_dir / "roundtrip_worst.png"
    img.save(path)
    print(f"worst: {worst['name']} ({worst['psnr']:.2f} dB) -> {path}")


if __name__ == "__main__":
    main()
