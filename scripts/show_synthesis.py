"""Before/after grids of synthesised expressions on real photos (for looking at, not for tests).

Rows are faces (Tom Cruise, the astronaut, a few faces of bald_guys, 2008_001322), columns the
input and the targets: jawOpen (AU26), smile (AU12+AU6), brows up (AU1+AU2), frown (AU4), then the
8 categories. Writes, under --out (default scratch/g/):
  synthesis_aus.png         the AU targets, face crops
  synthesis_categories.png  the 8 categories, face crops
  synthesis_mouth.png       zoom on the mouth for jawOpen / surprise / happiness

With ``--variants`` it writes instead, for every category x EMFACS variant at ``--intensity``:
  synthesis_variants.png     face crops at --cell px
  synthesis_variants_48.png  the same as 48 px grayscale crops (the FER2013 size), enlarged 3x
                             without smoothing so each of the 48 x 48 pixels shows

Usage:
    OMP_NUM_THREADS=1 python scripts/show_synthesis.py [--out DIR] [--cell 256] [--variants]
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
    p = PHOTOS / "2009_004587.jpg"
    if p.exists():
        out.append(("2009_004587#0", np.asarray(Image.open(p).convert("RGB")), 0))
    return out


def gray48(image: np.ndarray, *, show: int = 144) -> np.ndarray:
    """A face crop as the 48 px grayscale image a FER2013-sized model sees, enlarged to ``show`` px.

    The central 80% of the 1.5x face-box crop, i.e. 1.2x the face box: FER2013's tight framing.
    """
    h, w = image.shape[:2]
    m = (int(0.1 * h), int(0.1 * w))
    g = Image.fromarray(image[m[0]:h - m[0], m[1]:w - m[1]]).convert("L").resize((48, 48), Image.LANCZOS)
    return np.asarray(g.resize((show, show), Image.NEAREST).convert("RGB"))


def show_variants(synth: Synthesizer, out_dir: Path, cell: int, intensity: float) -> None:
    """Every category x variant on every face: full-size crops and 48 px grey crops."""
    from affectsynth.blendshapes import ExpressionModel

    model = synth.expressions if isinstance(synth.expressions, ExpressionModel) else ExpressionModel.default()
    targets = [Expression(c, intensity, v) for c in CATEGORIES for v in model.variants(c)]
    cols = ["input", *(f"{t.name}/{t.variant}" for t in targets)]
    rows, rows48, labels = [], [], []
    for label, image, k in faces():
        fits = synth.fit(image)
        if len(fits) <= k:
            print(f"{label}: face {k} not found ({len(fits)} faces)")
            continue
        crop, fit = synth.crop_to_face(image, fits[k], cell, scale=1.5)
        row = [crop] + [np.asarray(synth.synthesize(crop, t, fit=fit, rng_seed=0).image) for t in targets]
        rows.append(row)
        rows48.append([gray48(im) for im in row])
        labels.append(label)
        print(f"{label}: done", flush=True)
    for name, rr, c in (("synthesis_variants.png", rows, cell), ("synthesis_variants_48.png", rows48, 144)):
        Image.fromarray(make_grid(rr, labels, cols, cell=c, font_px=12)).save(out_dir / name)
        print("wrote", out_dir / name)


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
    ap.add_argument("--variants", action="store_true", help="category x variant grids, full size and 48 px grey")
    ap.add_argument("--intensity", type=float, default=1.0, help="intensity of the --variants targets")
    args = ap.parse_args()
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    synth = Synthesizer()
    if args.variants:
        show_variants(synth, out_dir, args.cell, args.intensity)
        return
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
