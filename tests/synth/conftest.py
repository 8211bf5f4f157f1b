"""Fixtures for tests/synth: real image files of every awkward kind (written here, no mocks)."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image


def png16_rgb(arr: np.ndarray) -> bytes:
    """Encode [H, W, 3] uint16 as a 16-bit RGB PNG (PIL cannot write these)."""
    h, w, _ = arr.shape
    raw = b"".join(b"\x00" + arr[i].astype(">u2").tobytes() for i in range(h))

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


@pytest.fixture(scope="session")
def photo() -> np.ndarray:
    """A small real photo: scikit-image's astronaut, 128 x 128."""
    import skimage.data

    return np.asarray(Image.fromarray(skimage.data.astronaut()).resize((128, 128)))


def write_awkward_images(folder: Path, photo: np.ndarray) -> dict[str, Path]:
    """Write one file per awkward case into ``folder``; returns name -> path."""
    folder.mkdir(parents=True, exist_ok=True)
    out: dict[str, Path] = {}

    def save(name: str, img: Image.Image, **kw) -> None:
        p = folder / name
        img.save(p, **kw)
        out[name] = p

    rgb = Image.fromarray(photo)
    save("rgb.png", rgb)
    save("gray.png", rgb.convert("L"))
    save("rgba.png", rgb.convert("RGBA"))
    save("la.png", rgb.convert("LA"))
    save("palette.png", rgb.convert("P"))
    save("cmyk.jpg", rgb.convert("CMYK"), quality=95)
    save("photo.JPG", rgb, quality=95)
    save("photo.webp", rgb, lossless=True)
    save("photo.bmp", rgb)
    save("photo.tiff", rgb)
    g16 = (photo[..., 1].astype(np.uint16) * 257)
    save("gray16.png", Image.fromarray(g16))
    (folder / "rgb16.png").write_bytes(png16_rgb(photo.astype(np.uint16) * 257))
    out["rgb16.png"] = folder / "rgb16.png"
    # EXIF orientation 6: stored landscape, displayed rotated 90 degrees clockwise
    exif = Image.Exif()
    exif[0x0112] = 6
    save("exif_rot.jpg", Image.fromarray(photo[:, :96]), exif=exif.tobytes(), quality=95)
    (folder / "empty.png").write_bytes(b"")
    out["empty.png"] = folder / "empty.png"
    (folder / "notimage.jpg").write_text("this is not an image\n")
    out["notimage.jpg"] = folder / "notimage.jpg"
    buf = io.BytesIO()
    rgb.save(buf, format="JPEG", quality=95)
    (folder / "truncated.jpg").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 3])
    out["truncated.jpg"] = folder / "truncated.jpg"
    buf = io.BytesIO()
    rgb.save(buf, format="PNG")
    (folder / "truncated.png").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    out["truncated.png"] = folder / "truncated.png"
    # a "bomb": 1-bit PNG of 12000 x 12000 = 144 MP that compresses to a few kB
    save("bomb.png", Image.new("1", (12000, 12000)))
    return out


@pytest.fixture(scope="session")
def awkward(tmp_path_factory: pytest.TempPathFactory, photo: np.ndarray) -> dict[str, Path]:
    """The awkward files (session-scoped: tests must not modify them)."""
    return write_awkward_images(tmp_path_factory.mktemp("awkward"), photo)


@pytest.fixture(scope="session")
def awkward_writer():
    """:func:`write_awkward_images`, for tests that need their own copy (no cross-test imports)."""
    return write_awkward_images


def _process_alive(pid: int) -> bool:
    """Whether process `pid` runs: exists and is not a zombie (from Linux /proc)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1][0] != "Z"
    except OSError:
        return False


@pytest.fixture
def alive():
    """``alive(pid)``: whether that process runs (exists and is not a zombie; Linux /proc)."""
    return _process_alive
