"""Benchmark the output encoders (`affectsynth.images.save_png`, lossless WebP) on real images: ms per image and KB.

    python scripts/bench_png.py [--repeats 31] [PNG ...]

Encodes each image (default: 256 px face crops of the dev photos, as ``generate --size 256``
crops them, unsynthesised) with the fast encoder (`encode_png_fast` at level 1, deflated by ISA-L,
the default, and by zlib, the fallback) and with Pillow at
levels 1 and 6 (what `save_png` did before at level 1: Pillow with zlib's RLE strategy), then as
lossless WebP (`affectsynth.output_images.encode_webp_lossless`: ``--image-format webp``, and one
higher effort for comparison), and prints the median thread-CPU ms (one thread; the machine is shared) and the bytes. Every encoding
is decoded again and must give back the pixels. Then the write that follows the encoding in
``save_png`` (`affectsynth.atomic.atomic_write_bytes`: temporary file, rename), 8 files per new
folder as ``generate`` writes them.
"""

from __future__ import annotations

import argparse
import io
import shutil
import statistics
import tempfile
import time
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

from affectsynth.atomic import atomic_write_bytes
from affectsynth.images import encode_png_fast, load_image
from affectsynth.output_images import WEBP_METHOD, WEBP_QUALITY, encode_webp_lossless

DEV = Path(__file__).resolve().parents[2] / "shared" / "assets" / "dev-photos"


def _pillow(level: int, strategy: int):
    def encode(a: np.ndarray) -> bytes:
        buf = io.BytesIO()
        Image.fromarray(a).save(buf, format="PNG", compress_level=level, compress_type=strategy)
        return buf.getvalue()
    return encode


ENCODERS = {"fast (Up filter, ISA-L) l1": lambda a: encode_png_fast(a, 1, deflater="isal"),
            "fast (Up filter, zlib RLE) l1": lambda a: encode_png_fast(a, 1, deflater="zlib"),
            "Pillow l1 RLE (before)": _pillow(1, zlib.Z_RLE),
            "Pillow l6": _pillow(6, zlib.Z_DEFAULT_STRATEGY),
            f"WebP lossless m{WEBP_METHOD} q{WEBP_QUALITY} (webp)": encode_webp_lossless,
            "WebP lossless m1 q0": lambda a: encode_webp_lossless(a, method=1, quality=0)}


def images(paths: list[Path]) -> list[np.ndarray]:
    """The given PNGs, or 256 px centre crops of the dev photos."""
    if paths:
        return [load_image(p) for p in paths]
    out = []
    for p in sorted(DEV.glob("*.jpg"))[:6]:
        a = load_image(p)
        h, w = a.shape[:2]
        s = min(h, w, 256)
        out.append(np.ascontiguousarray(a[(h - s) // 2:(h - s) // 2 + s, (w - s) // 2:(w - s) // 2 + s]))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("pngs", nargs="*", type=Path)
    ap.add_argument("--repeats", type=int, default=31)
    args = ap.parse_args()
    imgs = images(args.pngs)
    print(f"{len(imgs)} images, median of {args.repeats}, thread-CPU")
    for name, encode in ENCODERS.items():
        ms, kb = [], []
        for a in imgs:
            data = encode(a)
            with Image.open(io.BytesIO(data)) as img:
                if not np.array_equal(np.asarray(img), a):
                    raise SystemExit(f"bench_png: {name} is not lossless")
            ts = []
            for _ in range(args.repeats):
                t0 = time.thread_time()
                encode(a)
                ts.append(time.thread_time() - t0)
            ms.append(statistics.median(ts) * 1e3)
            kb.append(len(data) / 1024)
        print(f"  {name:30s} {statistics.mean(ms):6.2f} ms/image  {statistics.mean(kb):6.1f} KB/image")
    print(f"  {'write (atomic, no fsync)':30s} {write_ms([encode_png_fast(a, 1) for a in imgs], args.repeats):6.2f} ms/image")


def write_ms(datas: list[bytes], repeats: int) -> float:
    """Median thread-CPU ms of `atomic_write_bytes` (no fsync, as generate writes), 8 files per new folder."""
    root = Path(tempfile.mkdtemp(prefix="bench_png_"))
    ts = []
    try:
        for r in range(repeats):
            for k in range(8):
                t0 = time.thread_time()
                atomic_write_bytes(root / f"photo{r}" / f"f0_{k}.png", datas[(r + k) % len(datas)], fsync=False)
                ts.append(time.thread_time() - t0)
    finally:
        shutil.rmtree(root)
    return statistics.median(ts) * 1e3


if __name__ == "__main__":
    main()
