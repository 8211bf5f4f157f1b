"""Contact sheet of an animation: every k-th frame of a GIF/WebP (or a PNG-frames folder), optionally as 48 px grey.

    python scripts/contact_sheet.py docs/affect_circle.gif --every 4 --out /tmp/sheet.png [--grey48]

Each cell is labelled with its frame index and, when the frame manifest is found beside the
animation, its target (VA or category + intensity).
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw


def _frames(src: Path) -> list[np.ndarray]:
    if src.is_dir():
        return [np.asarray(Image.open(p).convert("RGB")) for p in sorted(src.glob("frame_*.png"))]
    out = []
    with Image.open(src) as im:
        for i in range(im.n_frames):
            im.seek(i)
            out.append(np.asarray(im.convert("RGB")))
    return out


def _labels(src: Path) -> list[str]:
    m = src / "frames.csv" if src.is_dir() else src.with_name(src.stem + ".frames.csv")
    if not m.exists():
        return []
    with open(m, newline="") as f:
        rows = list(csv.DictReader(f))
    return [f"V{float(r['valence']):+.2f} A{float(r['arousal']):+.2f}" if r["target_kind"] == "va"
            else f"{r['expression'][:5]} {float(r['intensity']):.2f}" for r in rows]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("src", type=Path)
    ap.add_argument("--every", type=int, default=4)
    ap.add_argument("--cols", type=int, default=6)
    ap.add_argument("--grey48", action="store_true", help="cells as 48 px greyscale (the FER2013 size), shown x3")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    frames, labels = _frames(args.src), _labels(args.src)
    picks = list(range(0, len(frames), args.every))
    cells = []
    for i in picks:
        im = Image.fromarray(frames[i])
        if args.grey48:
            im = im.convert("L").resize((48, 48), Image.BILINEAR).resize((144, 144), Image.NEAREST).convert("RGB")
        cell = Image.new("RGB", (im.width, im.height + 14), "white")
        cell.paste(im, (0, 14))
        ImageDraw.Draw(cell).text((2, 1), f"{i}" + (f" {labels[i]}" if i < len(labels) else ""), fill="black")
        cells.append(np.asarray(cell))
    rows = [cells[r:r + args.cols] for r in range(0, len(cells), args.cols)]
    blank = np.full_like(cells[0], 255)
    sheet = np.concatenate([np.concatenate(r + [blank] * (args.cols - len(r)), 1) for r in rows], 0)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(sheet).save(args.out)
    print(args.out, f"{len(picks)} of {len(frames)} frames")


if __name__ == "__main__":
    main()
