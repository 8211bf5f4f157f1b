"""The file formats the engine writes its outputs in, both lossless: PNG and WebP.

PNG is the default: every tool reads it, and it is the fastest to write here (about 0.4 ms per
256 px output, `affectsynth.images.save_png`). Lossless WebP stores the same pixels in about 28%
less space, for about 3.5 ms more CPU per 256 px output (``scripts/bench_png.py``): worth it where
disk, not CPU, is what a dataset of millions of outputs runs out of. Pillow, torchvision
(``decode_webp``), Ray Data and Hugging Face ``datasets`` all read it.

`save_output_image` writes one output atomically in either format; `is_complete_image` tells a
complete output file from what an interrupted write or a power loss leaves, cheaply, on resume.
"""

from __future__ import annotations

import io
import os
import struct
from pathlib import Path
from typing import TYPE_CHECKING

from affectsynth.atomic import atomic_write_bytes

if TYPE_CHECKING:
    import numpy as np

__all__ = ["IMAGE_FORMATS", "WEBP_METHOD", "WEBP_QUALITY", "encode_webp_lossless", "image_suffix",
           "is_complete_image", "save_output_image"]

#: The output formats, each lossless: the pixels read back are exactly the pixels synthesised.
IMAGE_FORMATS = ("png", "webp")

#: libwebp's lossless effort (Pillow's ``method``, 0-6) and ``quality`` (for lossless, how hard
#: it searches, 0-100) of `encode_webp_lossless`. Measured on 16 of generate's 256 px outputs
#: here (``scripts/bench_png.py``): 53 KB in 4.0 ms against the fast PNG's 73 KB in 0.5 ms;
#: method 1 (quality 0) saves another 11% of size for 1.9x the time, method 4 about 14% for 7x.
WEBP_METHOD = 0
WEBP_QUALITY = 50

_PNG_SIG = b"\x89PNG\r\n\x1a\n"
_PNG_IEND = b"\x00\x00\x00\x00IEND\xaeB`\x82"


def image_suffix(image_format: str) -> str:
    """The file suffix of ``image_format`` (`IMAGE_FORMATS`): ``".png"`` or ``".webp"``.

    Raises:
        ValueError: an unknown format.
    """
    if image_format not in IMAGE_FORMATS:
        raise ValueError(f"image format must be one of {IMAGE_FORMATS}, got {image_format!r}")
    return "." + image_format


def encode_webp_lossless(array: np.ndarray, *, method: int = WEBP_METHOD, quality: int = WEBP_QUALITY) -> bytes:
    """Encode ``[H, W, 3|4]`` uint8 as a lossless WebP (RGBA keeps the colour of transparent pixels).

    Raises:
        ValueError: not [H, W, 3|4] uint8 (WebP has no grey mode), or a side over WebP's 16383 px.
    """
    import numpy as np
    from PIL import Image

    if array.dtype != np.uint8 or array.ndim != 3 or array.shape[2] not in (3, 4):
        raise ValueError(f"encode_webp_lossless: expected [H, W, 3|4] uint8, got {array.shape} {array.dtype}")
    if max(array.shape[:2]) > 16383:
        raise ValueError(f"encode_webp_lossless: WebP images are at most 16383 px a side, got {array.shape[:2]}")
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(array)).save(buf, format="WEBP", lossless=True, method=method,
                                                      quality=quality, exact=True)
    return buf.getvalue()


def save_output_image(path: str | os.PathLike, array: np.ndarray, *, image_format: str = "png",
                      png_compress_level: int = 1, fsync: bool = True) -> None:
    """Write one output, ``[H, W, 3]`` uint8, atomically (a temporary file renamed into place) as
    ``image_format`` (`IMAGE_FORMATS`); ``path`` must carry that format's suffix.

    Args:
        path: destination; its folder is created if missing.
        array: [H, W, 3|4] uint8.
        image_format: "png" or "webp".
        png_compress_level: zlib level of a PNG (0-9, lossless at every level; see `save_png`).
        fsync: flush to disk before the rename.

    Raises:
        ValueError: an unknown format, a suffix that is not the format's, or a malformed array.
    """
    suffix = image_suffix(image_format)
    if Path(path).suffix.lower() != suffix:
        raise ValueError(f"{os.fspath(path)}: an {image_format} output must end in {suffix}")
    if image_format == "png":
        from affectsynth.images import save_png  # (Pillow and numpy: not at the manifest's import)

        save_png(path, array, compress_level=png_compress_level, fsync=fsync)
    else:
        atomic_write_bytes(path, encode_webp_lossless(array), fsync=fsync)


def _complete_png(head: bytes, tail: bytes, size: int) -> bool:
    return head[:8] == _PNG_SIG and tail == _PNG_IEND


def _complete_webp(head: bytes, tail: bytes, size: int) -> bool:
    # RIFF container: "RIFF", the size of what follows (little-endian u32), "WEBP".
    return head[:4] == b"RIFF" and head[8:12] == b"WEBP" and struct.unpack("<I", head[4:8])[0] + 8 == size


_CONTAINER_CHECKS = {".png": _complete_png, ".webp": _complete_webp}


def is_complete_image(path: str | os.PathLike, *, full: bool = False) -> bool:
    """True if ``path`` is a complete image file.

    PNG and WebP get an O(1) check of their container: for PNG the signature at the start and
    the IEND chunk at the end, for WebP the RIFF header and the length it declares. Both catch
    empty, zero-filled and truncated files, which is what a crash or power loss leaves. Other
    formats, or ``full=True``, are decoded by PIL, which also checks a PNG's chunk CRCs; WebP has
    no checksum, so a WebP whose tail was zeroed behind an intact header still decodes (to wrong
    pixels) and passes either check: outputs are renamed into place only once complete, so only
    a power loss before the data reached the disk leaves one.
    """
    p = Path(path)
    try:
        if not p.is_file():
            return False
        size = p.stat().st_size
        if size < len(_PNG_SIG) + len(_PNG_IEND):
            return False
        check = _CONTAINER_CHECKS.get(p.suffix.lower())
        if check is not None and not full:
            with open(p, "rb") as f:
                head = f.read(12)
                f.seek(-12, os.SEEK_END)
                tail = f.read(12)
            return check(head, tail, size)
        return _decodes(p)
    except OSError:
        return False


def _decodes(p: Path) -> bool:
    """Whether PIL reads all of ``p``: `verify` (chunk CRCs) where the plugin has one, then a full decode."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(p) as im:
            im.verify()
        with Image.open(p) as im:
            im.load()
    except (UnidentifiedImageError, SyntaxError, ValueError, OSError):
        return False
    return True
