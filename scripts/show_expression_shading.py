"""Before/after grids of the expression shading and wrinkles (for looking at, not for tests).

Faces: the astronaut (a smiling source), Tom Cruise, two faces of bald_guys (a group photo), a
small face (2008_001322), a turned one (2009_004587) and a grey copy of 2008_002470 (no grey
photo ships with the dev set). Each face is cropped to 256 px (as `generate` does) and
synthesised with all 8 categories, with `SynthSettings(expression_shading=False)` ("before") and
with the defaults ("after"), rows interleaved. Writes, under --out (default /tmp/wt10a):

  shading_full.png   face crops at full size, before/after rows
  shading_48.png     the same as 48 px grayscale crops (FER2013's size), shown 3x enlarged
  shading_ratio.png  after minus before, 2x, grey = no change, of each "after" cell

Usage:
    OMP_NUM_THREADS=1 python scripts/show_expression_shading.py [--out DIR] [--cell 192]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from affectsynth.blendshapes import CATEGORIES, Expression
from affectsynth.crop import crop_square
from affectsynth.grid import make_grid
from affectsynth.synthesizer import Synthesizer, SynthSettings

PHOTOS = Path(__file__).resolve().parents[2] / "shared" / "assets" / "dev-photos"


def faces() -> list[tuple[str, np.ndarray, int]]:
    """(label, photo, face index) of the faces shown; labels with "(small)" are synthesised on the
    whole photo at their own small size, the others on a 256 px crop of the face."""
    import skimage.data

    out = [("astronaut (smiling)", np.asarray(skimage.data.astronaut()), 0)]

    def add(name: str, label: str, k: int = 0, *, grey: bool = False) -> None:
        p = PHOTOS / name
        if p.exists():
            img = Image.open(p).convert("L").convert("RGB") if grey else Image.open(p).convert("RGB")
            out.append((label, np.asarray(img), k))

    add("Tom_Cruise_avp_2014_4.jpg", "Tom_Cruise")
    add("bald_guys.jpg", "bald_guys#0", 0)
    add("bald_guys.jpg", "bald_guys#5", 5)
    add("2008_001322.jpg", "2008_001322 (small)", 0)
    add("2009_004587.jpg", "2009_004587 (turned)", 0)
    add("2008_002470.jpg", "2008_002470 (grey)", 0, grey=True)
    return out


def fer(img: np.ndarray, fit_bbox, size: int = 48) -> np.ndarray:
    """48 px grayscale face crop (FER2013-like: the face fills most of the square)."""
    return np.asarray(Image.fromarray(crop_square(img, fit_bbox, size, scale=1.25)).convert("L"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="/tmp/wt10a")
    ap.add_argument("--cell", type=int, default=192)
    ap.add_argument("--intensity", type=float, default=1.0)
    args = ap.parse_args()
    torch.set_num_threads(1)
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    before = Synthesizer(settings=SynthSettings(expression_shading=False))
    after = Synthesizer()
    targets = [Expression(c, args.intensity) for c in CATEGORIES]
    rows_full, rows_48, rows_ratio, labels = [], [], [], []
    for label, image, k in faces():
        fits = after.fit(image)
        if len(fits) <= k:
            print(f"{label}: face {k} not found ({len(fits)} faces)")
            continue
        if "(small)" in label:
            crop, fit = image, fits[k]
        else:
            crop, fit = after.crop_to_face(image, fits[k], 256)
        side = max(fit.bbox[2] - fit.bbox[0], fit.bbox[3] - fit.bbox[1])

        def show(img: np.ndarray) -> np.ndarray:
            return crop_square(img, fit.bbox, 256, scale=1.6) if "(small)" in label else img

        print(f"{label}: face {side:.0f} px where synthesised, fitted smile "
              f"{float(fit.expression[list(fit.expression_names).index('mouthSmile_L')]):.2f}", flush=True)
        for name, synth in (("before", before), ("after", after)):
            outs = [synth.synthesize(crop, t, fit=fit).image for t in targets]
            rows_full.append([show(crop), *(show(o) for o in outs)])
            rows_48.append([np.kron(fer(o, fit.bbox), np.ones((3, 3), np.uint8)) for o in (crop, *outs)])
            labels.append(f"{label} {name}")
            if name == "after":
                diff = [np.clip(128 + 2.0 * (o.astype(np.int16) - b.astype(np.int16)).mean(-1), 0, 255).astype(np.uint8)
                        for o, b in zip(rows_full[-1][1:], rows_full[-2][1:])]
                rows_ratio.append([rows_full[-1][0], *diff])
    cols = ["input", *CATEGORIES]
    for name, rows, lab in (("shading_full.png", rows_full, labels), ("shading_48.png", rows_48, labels),
                            ("shading_ratio.png", rows_ratio, labels[1::2])):
        grid = make_grid(rows, lab, cols, cell=args.cell if name != "shading_48.png" else 144)
        Image.fromarray(grid).save(out_dir / name)
        print("wrote", out_dir / name)


if __name__ == "__main__":
    main()
