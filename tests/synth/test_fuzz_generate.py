"""Fuzz `affectsynth generate` with hostile inputs made at test time from real photos.

Every category of issue 11 is among them: non-UTF-8 names, names that sanitise alike (``a:b`` vs
``a_b``, control characters), sides of 32767 px or more under the pixel limit, decompression bombs,
truncated / zero-byte / random files, TIFFs Pillow cannot decode, all 8 EXIF orientations, faces
turned 90 and 180 degrees, grey photos, tiny and faceless images, plus a few hundred corrupt files
under random names. The batch must not crash, every input must get a row with a specific reason,
no two sources may share an output, the manifest must parse with the csv module, and a second
run must change nothing. Run with ``-s`` to see the category table.
"""

from __future__ import annotations

import csv
import importlib.util
import io
import os
import random
import struct
import zlib
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

if importlib.util.find_spec("affectsynth.synthesizer") is None:
    pytest.skip("needs affectsynth.synthesizer", allow_module_level=True)

pytestmark = pytest.mark.slow

from affectsynth.cli import main  # noqa: E402
from affectsynth.manifest import COLUMNS  # noqa: E402

DEV = Path(__file__).resolve().parents[2] / ".." / "shared" / "assets" / "dev-photos"
UNSAFE = ':?*|"\\<'


def _chunk(tag: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)


def png_header_only(w: int, h: int) -> bytes:
    """A PNG whose header claims w x h (grey, 1 bit) with a few bytes of data: refused or failing fast."""
    ihdr = struct.pack(">IIBBBBB", w, h, 1, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", zlib.compress(b"\x00" * 64))
            + _chunk(b"IEND", b""))


def tiff_with_compression(code: int) -> bytes:
    """An 8 x 8 RGB TIFF whose compression tag says ``code`` (one Pillow has no decoder for)."""
    buf = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buf, format="TIFF")
    d = bytearray(buf.getvalue())
    (ifd,) = struct.unpack("<I", d[4:8])
    (n,) = struct.unpack("<H", d[ifd:ifd + 2])
    for i in range(n):
        e = ifd + 2 + 12 * i
        if struct.unpack("<H", d[e:e + 2])[0] == 259:
            d[e + 8:e + 10] = struct.pack("<H", code)
    return bytes(d)


def jpeg(img: np.ndarray, **kw) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="JPEG", quality=90, **kw)
    return buf.getvalue()


def _faces() -> list[np.ndarray]:
    import skimage.data

    faces = [np.asarray(Image.fromarray(skimage.data.astronaut()[:320, 96:416]).resize((160, 160)))]
    tom = DEV / "Tom_Cruise_avp_2014_4.jpg"
    if tom.exists():
        with Image.open(tom) as im:
            faces.append(np.asarray(im.convert("RGB").resize((170, 240))))
            faces.append(np.asarray(im.convert("L").convert("RGB").resize((170, 240))))  # a grey photo
    return faces


def build_inputs(root: Path, n_random: int = 240, seed: int = 0) -> dict[bytes, str]:
    """Write the hostile inputs under ``root``; returns relative path (bytes) -> category."""
    rng = random.Random(seed)
    faces = _faces()
    face_jpgs = [jpeg(f) for f in faces]
    cats: dict[bytes, str] = {}

    def put(rel: bytes, data: bytes, cat: str) -> None:
        p = os.path.join(os.fsencode(root), rel)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "wb") as f:
            f.write(data)
        cats[rel] = cat

    noface = jpeg(np.full((64, 64, 3), 120, np.uint8))
    # 1. names that are not UTF-8, one face, one faceless
    put(b"names/caf\xe9.jpg", face_jpgs[0], "non-utf8-name")
    put(b"names/\xff\xfe-x.jpg", noface, "non-utf8-name")
    put(b"names/caf\xc3\xa9.jpg", noface, "non-utf8-name")  # the UTF-8 spelling of the same name
    # 2. names that sanitise alike: each its own output; faces on some
    for i, ch in enumerate(UNSAFE + "_\n\t\r"):
        put(b"clash/a" + ch.encode() + b"b.jpg", face_jpgs[i % len(face_jpgs)] if i < 4 else noface,
            "colliding-name")
    put(b"clash/a:b/x.jpg", noface, "colliding-name")
    put(b"clash/a_b/x.jpg", noface, "colliding-name")
    put(b"clash/a_b~0123456789.jpg", noface, "colliding-name")  # looks like a marker
    # 3. sides of 32767 px or more under the pixel limit, and bombs
    put(b"big/wide.png", png_header_only(33000, 1000), "long-side")
    put(b"big/tall.png", png_header_only(1, 40_000_000), "long-side")
    put(b"big/edge.png", png_header_only(32767, 8), "long-side")
    put(b"big/bomb.png", png_header_only(20000, 20000), "bomb")
    # 4. broken files
    put(b"bad/empty.jpg", b"", "zero-byte")
    put(b"bad/text.jpg", b"hello, not an image\n", "random-bytes")
    put(b"bad/trunc.jpg", face_jpgs[0][: len(face_jpgs[0]) // 3], "truncated")
    put(b"bad/zeroes.png", bytes(4096), "random-bytes")
    put(b"bad/zero_w.png", png_header_only(0, 10), "zero-size")
    # 5. TIFFs Pillow cannot decode
    put(b"tiff/jpeg2000.tif", tiff_with_compression(34712), "tiff-undecodable")
    put(b"tiff/big.tiff", b"II+\x00\x08\x00\x00\x00" + bytes(64), "tiff-undecodable")
    # 6. EXIF orientations: stored rotated, displayed upright
    base = faces[0]
    ops = {1: lambda a: a, 2: np.fliplr, 3: lambda a: np.rot90(a, 2), 4: np.flipud,
           5: lambda a: np.rot90(np.fliplr(a), 1), 6: lambda a: np.rot90(a, 1), 7: lambda a: np.rot90(np.fliplr(a), -1),
           8: lambda a: np.rot90(a, -1)}
    for o, op in ops.items():
        exif = Image.Exif()
        exif[0x0112] = o
        put(f"exif/o{o}.jpg".encode(), jpeg(np.ascontiguousarray(op(base)), exif=exif.tobytes()), "exif-orientation")
    # 7. turned faces
    for k in (1, 3):
        put(f"turned/rot{90 * k}.jpg".encode(), jpeg(np.ascontiguousarray(np.rot90(faces[-1], k))), "rotated-90")
    put(b"turned/rot180.jpg", jpeg(np.ascontiguousarray(np.rot90(faces[-1], 2))), "rotated-180")
    # 8. tiny and faceless
    put(b"small/one.png", png_bytes(np.zeros((1, 1, 3), np.uint8)), "tiny")
    put(b"small/line.png", png_bytes(np.zeros((1, 300, 3), np.uint8)), "tiny")
    put(b"small/noise.png", png_bytes(np.random.default_rng(0).integers(0, 255, (96, 96, 3), dtype=np.uint8)),
        "no-face")
    # 9. a few hundred corrupt files under random hostile names
    alphabet = list("abcXYZ019 .-_()[]{}'~!@#$%^&=+,;") + list(UNSAFE) + ["\n", "\t", "\r", "é", "ß", "中", "😀"]
    for i in range(n_random):
        name = "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 24))).replace("/", "")
        raw = name.encode("utf-8")
        if rng.random() < 0.2:
            raw += bytes([rng.choice([0x80, 0xa0, 0xe9, 0xfe, 0xff])])
        ext = rng.choice([".jpg", ".png", ".JPG", ".webp", ".tif", ".bmp"])
        src = face_jpgs[i % len(face_jpgs)]
        kind = rng.choice(["truncated", "random-bytes", "zero-byte", "header-only"])
        data = {"truncated": src[: rng.randint(1, len(src) // 2)], "zero-byte": b"",
                "random-bytes": rng.randbytes(rng.randint(1, 2048)),
                "header-only": src[:600]}[kind]
        put(b"random/" + f"{i:03d}_".encode() + raw + ext.encode(), data, "random-name-" + kind)
    return cats


def png_bytes(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, format="PNG")
    return buf.getvalue()


#: category -> (allowed statuses, allowed reasons, text the error must contain or "").
EXPECT = {
    "non-utf8-name": ({"ok", "skipped"}, {"", "no-face"}, ""),
    "colliding-name": ({"ok", "skipped"}, {"", "no-face"}, ""),
    "long-side": ({"error"}, {"unreadable"}, "side too long"),
    "bomb": ({"error"}, {"unreadable"}, "too large"),
    "zero-byte": ({"error"}, {"unreadable"}, "empty file"),
    "random-bytes": ({"error"}, {"unreadable"}, ""),
    "truncated": ({"error"}, {"unreadable"}, ""),
    "zero-size": ({"error"}, {"unreadable"}, ""),
    "tiff-undecodable": ({"error"}, {"unreadable"}, "TIFF"),
    "exif-orientation": ({"ok"}, {""}, ""),
    "rotated-90": ({"skipped"}, {"rotated-face", "no-face"}, ""),
    "rotated-180": ({"ok", "skipped"}, {"", "rotated-face", "no-face", "poor-fit", "extreme-pose"}, ""),
    "tiny": ({"skipped"}, {"no-face"}, ""),
    "no-face": ({"skipped"}, {"no-face"}, ""),
}


def _expect(cat: str):
    return EXPECT.get(cat) or ({"error"}, {"unreadable"}, "")  # random-name-*: corrupt files


def _snapshot(out: Path) -> dict[str, tuple[int, int]]:
    """Size and mtime of every file but the lock (which records the run holding the folder)."""
    from affectsynth.lock import LOCK_NAME

    return {p.relative_to(out).as_posix(): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in out.rglob("*") if p.is_file() and p.name != LOCK_NAME}


def test_fuzz_generate(tmp_path, capsys):
    from affectsynth.naming import display_path

    inp, out = tmp_path / "in", tmp_path / "out"
    cats = build_inputs(inp)
    args = ["generate", str(inp), str(out), "--expressions", "happiness", "--size", "64", "--workers", "1",
            "--quiet"]
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 3, r.output  # finished; the bad inputs failed
    with open(out / "manifest.csv", newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        assert tuple(next(reader)) == COLUMNS
        recs = list(reader)
    assert all(len(rec) == len(COLUMNS) for rec in recs)
    rows = [dict(zip(COLUMNS, rec)) for rec in recs]
    assert not any(ch in v for row in rows for v in row.values() for ch in "\r\n\x00")

    by_source = defaultdict(list)
    for row in rows:
        by_source[row["source"]].append(row)
    want = {display_path(os.fsdecode(rel)): cat for rel, cat in cats.items()}
    assert len(want) == len(cats)  # display forms stay distinct
    assert set(by_source) == set(want)  # one source per input, none lost, none invented
    outputs = Counter(row["output"] for row in rows)
    assert max(outputs.values()) == 1  # no two sources (or rows) share an output

    table: dict[str, Counter] = defaultdict(Counter)
    for src, cat in want.items():
        (row,) = by_source[src]
        statuses, reasons, needle = _expect(cat)
        reason = row["error"].split(":", 1)[0] if row["error"] else ""
        assert row["status"] in statuses and reason in reasons, (cat, src, row["status"], row["error"])
        assert needle in row["error"], (cat, src, row["error"])
        key = "random-name (corrupt)" if cat.startswith("random-name-") else cat
        table[key][f"{row['status']} {reason}".strip()] += 1
    oks = [row for row in rows if row["status"] == "ok"]
    assert len(oks) >= 10  # real faces went through (EXIF orientations, clashing names, non-UTF-8 name)
    pngs = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.png"))
    assert pngs == sorted(row["output"] for row in oks)
    for row in oks:
        with Image.open(out / row["output"]) as im:
            assert im.size == (64, 64)

    before = _snapshot(out)
    r2 = CliRunner().invoke(main, args)
    assert r2.exit_code == 0, r2.output  # permanent failures stand, nothing new failed
    assert "0 outputs written" in r2.stderr and "not retried" in r2.stderr
    assert _snapshot(out) == before  # a second run changes nothing

    with capsys.disabled():
        print(f"\n{'category':<22} {'count':>5}  outcome")
        for cat in sorted(table):
            print(f"{cat:<22} {sum(table[cat].values()):>5}  " + ", ".join(f"{k} {v}" for k, v in
                                                                         sorted(table[cat].items())))
