"""Before/after grids of synthesised expressions on real photos (for looking at, not for tests).

Rows are faces (Tom Cruise, the astronaut, a few faces of bald_guys, 2008_001322), columns the
input and the targets: jawOpen (AU26), smile (AU12+AU6), brows up (AU1+AU2), frown (AU4), then the
8 categories. Writes, under --out (default scratch/g/):
  synthesis_aus.png         the AU targets, face crops
  synthesis_categories.png  the 8 categories, face crops
  synthesis_mouth.png       zoom on the mouth for jawOpen / surprise / happiness

Usage:
    OMP_NUM_THREADS=1 python scripts/show_synthesis.py [--out DIR] [--cell 256]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image

from affectsynth.blendshapes import CATEGORIES, AUs, Expression
from affectsynth.crop import crop_square
from affectsynth.grid import make_grid
from affectsynth.synthesizer import Synthesizer

PHOTOS = Path(__file__).resolve().parents[2] / "shared" / "assets" / "dev-photos"

AU_TARGETS = {
    "jawOpen AU26+25": AUs({"AU26": 1.0, "AU25": 1.0}),
    "jawOpen AU26": AUs({"AU26": 1.0}),
    "smile AU12+6": AUs({"AU12": 1.0, "AU6": 1.0}),
    "brows up AU1+2": AUs({"AU1": 1.0, "AU2": 1.0}),
    "frown AU4": AUs({"AU4": 1.0}),
}


def faces() -> list[tuple[str, np.ndarray, int]]:
    """(label, photo, face index) of the faces shown."""
    import skimage.data

    out = []
    tom = PHOTOS / "Tom_Cruise_avp_2014_4.jpg"
    if tom.exists():
        out.append(("Tom_Cruise", np.asarray(Image.open(tom).convert("RGB")), 0))
    out.append(("astronaut", np.asarray(skimage.data.astronaut()), 0))
    bald = PHOTOS / "bald_guys.jpg"
    if bald.exists():
        img = np.asarray(Image.open(bald).convert("RGB"))
        out += [(f"bald_guys#{k}", img, k) for k in (0, 1, 5, 9)]
    p = PHOTOS / "2008_001322.jpg"
    if p.exists():
        img = np.asarray(Image.open(p).convert("RGB"))
        out += [("2008_001322#0", img, 0), ("2008_001322#1", img, 1)]
    return out


def mouth_crop(image: np.ndarray, landmarks: np.ndarray, size: int) -> np.ndarray:
    """Square crop around MediaPipe mouth landmarks (corners 61/291, lips 0/17), resized."""
    pts = landmarks[[61, 291, 0, 17, 152]]
    cx, cy = pts[:2, 0].mean(), pts[[2, 3], 1].mean()
    side = 1.8 * (pts[1, 0] - pts[0, 0]) + 1
    bbox = (cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2)
    return crop_square(image, bbox, size, scale=1.0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / "scratch" / "g"))
    ap.add_argument("--cell", type=int, default=256)
    args = ap.parse_args()
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    synth = Synthesizer()
    cats = {c: Expression(c, 1.0) for c in CATEGORIES}
    mouth_targets = {"jawOpen AU26+25": AU_TARGETS["jawOpen AU26+25"], "surprise": cats["surprise"],
                     "happiness": cats["happiness"], "fear": cats["fear"]}
    rows_aus, rows_cat, rows_mouth, labels = [], [], [], []
    for label, image, k in faces():
        fits = synth.fit(image)
        if len(fits) <= k:
            print(f"{label}: face {k} not found ({len(fits)} faces)")
            continue
        fit = fits[k]

        def crop(img: np.ndarray) -> np.ndarray:
            return crop_square(img, fit.bbox, args.cell, scale=1.5)

        row_a, row_c = [crop(image)], [crop(image)]
        for t in AU_TARGETS.values():
            row_a.append(crop(synth.synthesize(image, t, fit=fit).image))
        for t in cats.values():
            row_c.append(crop(synth.synthesize(image, t, fit=fit).image))
        lm = fit.landmarks.cpu().numpy()
        row_m = [mouth_crop(image, lm, args.cell)]
        for t in mouth_targets.values():
            res = synth.synthesize(image, t, fit=fit)
            row_m.append(mouth_crop(res.image, np.asarray(res.labels.landmarks), args.cell))
        rows_aus.append(row_a)
        rows_cat.append(row_c)
        rows_mouth.append(row_m)
        labels.append(label)
        print(f"{label}: face {max(fit.bbox[2] - fit.bbox[0], fit.bbox[3] - fit.bbox[1]):.0f} px, "
              f"texture {synth.texture_resolution(fit)}", flush=True)
    for name, rows, cols in (
        ("synthesis_aus.png", rows_aus, ["input", *AU_TARGETS]),
        ("synthesis_categories.png", rows_cat, ["input", *cats]),
        ("synthesis_mouth.png", rows_mouth, ["input (mouth)", *mouth_targets]),
    ):
        grid = make_grid(rows, labels, cols, cell=args.cell)
        Image.fromarray(grid).save(out_dir / name)
        print("wrote", out_dir / name)


if __name__ == "__main__":
    main()
