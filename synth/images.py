"""Image I/O at the synth boundary: robust loading to uint8 RGB, layout conversion, atomic PNG writes.

Every image that enters the engine goes through :func:`load_image` (files) or
:func:`to_numpy_image` (in-memory PIL / numpy / torch images); both return a C-contiguous
``[H, W, 3] uint8`` RGB array. :func:`restore_like` converts a result back to the caller's
type, layout, dtype (and device, for tensors).
"""

from __future__ import annotations

import io
import os
import struct
import sys
import warnings
import zlib
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from affectsynth.atomic import atomic_write_bytes

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "IMAGE_EXTENSIONS",
    "MAX_SIDE",
    "ImageLoadError",
    "describe_unreadable",
    "encode_png_fast",
    "is_image_path",
    "load_image",
    "pil_to_rgb_array",
    "restore_like",
    "save_png",
    "to_numpy_image",
]

#: Largest image (width * height) :func:`load_image` decodes by default: 50 megapixels.
DEFAULT_MAX_PIXELS = 50_000_000

#: Longest image side (pixels) the engine accepts. OpenCV (inside MediaPipe) aborts the whole
#: process on a side of 32767 (SHRT_MAX) or more, so such images are refused before any decoding.
MAX_SIDE = 32766

#: File extensions (lower case) the engine treats as images.
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff")


class ImageLoadError(ValueError):
    """An image file could not be decoded; the message names the file and the problem in one line."""


def is_image_path(path: str | os.PathLike) -> bool:
    """True if ``path`` has one of :data:`IMAGE_EXTENSIONS` (case-insensitive)."""
    return os.path.splitext(os.fspath(path))[1].lower() in IMAGE_EXTENSIONS


def _one_line(msg: object) -> str:
    return " ".join(str(msg).split())


_TIFF_COMPRESSION = {1: "none", 2: "CCITT RLE", 3: "CCITT G3", 4: "CCITT G4", 5: "LZW", 6: "old-style JPEG",
                     7: "JPEG", 8: "Deflate", 32773: "PackBits", 32946: "Deflate", 34661: "JBIG",
                     34712: "JPEG 2000", 34887: "LERC", 34925: "LZMA", 50000: "Zstandard", 50001: "WebP",
                     50002: "JPEG XL"}


def _tiff_summary(head: bytes) -> str:
    """Compression / samples of a classic TIFF's first image, from its header bytes ("" if unknown)."""
    bo = "<" if head[:2] == b"II" else ">"
    try:
        (ifd,) = struct.unpack(bo + "I", head[4:8])
        (n,) = struct.unpack(bo + "H", head[ifd:ifd + 2])
        tags: dict[int, int] = {}
        for i in range(min(n, 512)):
            e = ifd + 2 + 12 * i
            tag, typ, count = struct.unpack(bo + "HHI", head[e:e + 8])
            if typ == 3 and count >= 1:  # SHORT: the value (or the first of several) sits in place if it fits
                raw = head[e + 8:e + 10] if count <= 2 else None
                if raw is None and tag == 258:
                    (off,) = struct.unpack(bo + "I", head[e + 8:e + 12])
                    raw = head[off:off + 2]
                tags[tag] = struct.unpack(bo + "H", raw)[0]
            elif typ == 4 and count == 1:
                tags[tag] = struct.unpack(bo + "I", head[e + 8:e + 12])[0]
    except (struct.error, IndexError):
        return ""
    parts = []
    if 259 in tags:
        c = tags[259]
        parts.append(f"compression {c} ({_TIFF_COMPRESSION.get(c, 'unknown')})")
    if 277 in tags or 258 in tags:
        parts.append(f"{tags.get(277, 1)} sample(s) of {tags.get(258, '?')} bits")
    if 339 in tags:
        parts.append(f"sample format {tags[339]}")
    return ", ".join(parts)


def describe_unreadable(path: str | os.PathLike) -> str:
    """Why PIL cannot read ``path``, from its first bytes: the format it is, or "not a recognised image format"."""
    try:
        with open(path, "rb") as f:
            head = f.read(1 << 16)
    except OSError as e:
        return f"cannot read file ({_one_line(e)})"
    if head[:4] in (b"II*\x00", b"MM\x00*"):
        info = _tiff_summary(head)
        return ("a TIFF image that Pillow cannot decode" + (f" ({info})" if info else "")
                + "; convert it to PNG or a baseline TIFF (LZW/Deflate, 8 or 16 bits)")
    if head[:4] in (b"II+\x00", b"MM\x00+"):
        return "a BigTIFF file, which Pillow cannot read; convert it to PNG or a classic TIFF"
    brand = head[8:12] if head[4:8] == b"ftyp" else b""
    if brand in (b"heic", b"heix", b"heim", b"heis", b"hevc", b"mif1", b"msf1"):
        return "a HEIC/HEIF image, which Pillow cannot read without a plugin; convert it to JPEG or PNG"
    if brand in (b"avif", b"avis"):
        return "an AVIF image, which this Pillow build cannot read; convert it to PNG or JPEG"
    if head[:12] == b"\x00\x00\x00\x0cjP  \r\n\x87\n" or head[:4] == b"\xff\x4f\xff\x51":
        return "a JPEG 2000 image, which this Pillow build cannot read; convert it to PNG or JPEG"
    if head[:4] == b"8BPS":
        return "a Photoshop (PSD) file that Pillow cannot decode; export it as PNG"
    if head[:5] == b"%PDF-":
        return "a PDF document, not an image"
    if head.lstrip()[:5] in (b"<?xml", b"<svg ") or b"<svg" in head[:512]:
        return "an SVG (vector) file, not a raster image"
    return "not a recognised image format"


def _scale_to_uint8(arr: np.ndarray, *, where: str) -> np.ndarray:
    """Scale an integer/float single-channel array to uint8 by its type's range (not clipping)."""
    if arr.dtype == np.uint8:
        return arr
    if arr.dtype == np.uint16 or (arr.dtype.kind in "iu" and arr.size and arr.max() > 255):
        # 16-bit data (PIL "I;16*", or "I" holding 16-bit PNG samples): 65535 -> 255.
        a = np.clip(arr.astype(np.float64), 0, 65535) / 257.0
        return np.rint(a).astype(np.uint8)
    if arr.dtype.kind in "iu":
        return np.clip(arr, 0, 255).astype(np.uint8)
    if arr.dtype.kind == "f":
        a = np.nan_to_num(arr.astype(np.float64))
        scale = 255.0 if a.size == 0 or a.max() <= 1.0 else 1.0
        return np.rint(np.clip(a * scale, 0, 255)).astype(np.uint8)
    raise ImageLoadError(f"{where}: unsupported pixel type {arr.dtype}")


def _composite_on_white(img: Image.Image) -> Image.Image:
    rgba = img.convert("RGBA")
    bg = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    return Image.alpha_composite(bg, rgba).convert("RGB")


def pil_to_rgb_array(img: Image.Image, *, where: str = "image") -> np.ndarray:
    """Convert a decoded PIL image of any mode to ``[H, W, 3] uint8`` RGB.

    Modes: ``1``/``L``/``P``/``YCbCr``/``LAB``/``HSV`` convert directly; ``RGBA``/``LA``/``PA``
    and palette images with transparency are composited over white; ``CMYK`` goes through its
    embedded ICC profile when present (else PIL's conversion); 16-bit (``I;16*``, ``I``) and float
    (``F``) data are scaled by their range, not clipped.

    Args:
        img: a loaded PIL image.
        where: name used in error messages (e.g. the file name).

    Returns:
        [H, W, 3] uint8 RGB, C-contiguous.
    """
    mode = img.mode
    if mode == "RGB":
        out = np.asarray(img)
    elif mode in ("RGBA", "LA", "PA", "RGBa", "La") or (mode == "P" and "transparency" in img.info):
        out = np.asarray(_composite_on_white(img))
    elif mode.startswith("I") or mode == "F":
        arr = np.asarray(img)
        if arr.ndim == 3:
            arr = arr[..., 0]
        g = _scale_to_uint8(arr, where=where)
        out = np.repeat(g[..., None], 3, axis=2)
    elif mode == "CMYK":
        out = None
        icc = img.info.get("icc_profile")
        if icc:
            try:
                from PIL import ImageCms

                src = ImageCms.ImageCmsProfile(io.BytesIO(icc))
                dst = ImageCms.createProfile("sRGB")
                out = np.asarray(ImageCms.profileToProfile(img, src, dst, outputMode="RGB"))
            except (ImportError, OSError, ValueError, ImageCms.PyCMSError):
                out = None
        if out is None:
            out = np.asarray(img.convert("RGB"))
    else:
        try:
            out = np.asarray(img.convert("RGB"))
        except (ValueError, OSError) as e:
            raise ImageLoadError(f"{where}: cannot convert mode {mode!r} to RGB ({_one_line(e)})") from e
    if out.dtype != np.uint8:
        out = _scale_to_uint8(out, where=where)
    if out.ndim != 3 or out.shape[2] != 3:
        raise ImageLoadError(f"{where}: expected 3 channels after conversion, got shape {out.shape}")
    return np.ascontiguousarray(out)


def load_image(path: str | os.PathLike, *, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Load an image file as ``[H, W, 3] uint8`` RGB, upright.

    EXIF orientation is applied; any PIL mode is converted (see :func:`pil_to_rgb_array`).

    Args:
        path: image file (JPEG, PNG, WebP, BMP, TIFF, or anything PIL decodes).
        max_pixels: refuse images with more than this many pixels (width * height) before
            decoding them (decompression-bomb guard); ``None`` disables the check.

    Returns:
        [H, W, 3] uint8 RGB, C-contiguous.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ImageLoadError: empty, truncated, corrupt, too large (pixels, or a side over
            :data:`MAX_SIDE`), or not an image (the message says what it is, e.g. a TIFF with a
            compression Pillow lacks); the one-line message starts with the file name.
    """
    p = Path(path)
    where = str(p)
    if not p.exists():
        raise FileNotFoundError(f"load_image: {where}: no such file")
    if p.is_dir():
        raise ImageLoadError(f"{where}: is a directory, expected an image file")
    try:
        size = p.stat().st_size
    except OSError as e:
        raise ImageLoadError(f"{where}: cannot stat file ({_one_line(e)})") from e
    if size == 0:
        raise ImageLoadError(f"{where}: empty file (0 bytes)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(p) as img:
                w, h = img.size
                if max(w, h) > MAX_SIDE:
                    raise ImageLoadError(
                        f"{where}: image side too long ({w}x{h}; the limit is {MAX_SIDE} px a side, "
                        "which the face detector's image library cannot exceed)")
                if max_pixels is not None and w * h > max_pixels:
                    raise ImageLoadError(
                        f"{where}: image too large ({w}x{h} = {w * h / 1e6:.1f} MP; the limit is "
                        f"{max_pixels / 1e6:.1f} MP, see max_pixels)")
                if w <= 0 or h <= 0:
                    raise ImageLoadError(f"{where}: image has zero size ({w}x{h})")
                img.load()
                try:  # in place: no copy of the whole image when it is already upright (~1 ms a photo)
                    ImageOps.exif_transpose(img, in_place=True)
                except (OSError, ValueError, KeyError, TypeError, SyntaxError, ZeroDivisionError):
                    pass  # a broken EXIF block: keep the stored orientation
                return pil_to_rgb_array(img, where=where)
    except ImageLoadError:
        raise
    except UnidentifiedImageError as e:
        raise ImageLoadError(f"{where}: {describe_unreadable(p)}") from e
    except Image.DecompressionBombError as e:
        raise ImageLoadError(f"{where}: image too large (decompression bomb guard: {_one_line(e)})") from e
    except (OSError, ValueError, SyntaxError, EOFError, IndexError, struct.error) as e:
        msg = _one_line(e) or type(e).__name__
        if "truncated" in msg.lower():
            msg = "truncated file (" + msg + ")"
        elif not describe_unreadable(p).startswith("not a recognised"):  # e.g. a TIFF with an odd codec
            msg = f"{describe_unreadable(p)} ({msg})"
        raise ImageLoadError(f"{where}: cannot decode image: {msg}") from e
    except MemoryError as e:
        raise ImageLoadError(f"{where}: out of memory while decoding") from e


# --------------------------------------------------------------------------- layouts

def _is_tensor(x: Any) -> bool:
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(x, torch.Tensor)


def torch_mod() -> Any:
    """The already-imported torch module (only called once a tensor was seen)."""
    return sys.modules["torch"]


def _float_to_uint8(a: np.ndarray, *, where: str) -> np.ndarray:
    if a.size:
        if not np.isfinite(a).all():
            n_nan, n_inf = int(np.isnan(a).sum()), int(np.isinf(a).sum())
            raise ValueError(f"{where}: float images must be finite, in [0, 1], got {n_nan} NaN and {n_inf} "
                             "infinite values")
        lo, hi = float(np.min(a)), float(np.max(a))
        if lo < -1e-3 or hi > 1.0 + 1e-3:
            raise ValueError(f"{where}: float images must be in [0, 1], got range [{lo:.3g}, {hi:.3g}]")
    return np.rint(np.clip(a, 0.0, 1.0) * 255.0).astype(np.uint8)


def _hwc_to_rgb(a: np.ndarray, *, where: str) -> np.ndarray:
    """[H, W] / [H, W, 1|3|4] uint8 -> [H, W, 3] uint8 (alpha dropped: the caller keeps it)."""
    if a.ndim == 2:
        a = a[..., None]
    c = a.shape[2]
    if c == 1:
        a = np.repeat(a, 3, axis=2)
    elif c == 4:
        a = a[..., :3]
    elif c != 3:
        raise ValueError(f"{where}: expected 1, 3 or 4 channels, got shape {tuple(a.shape)}")
    _check_size(a.shape[0], a.shape[1], where=where)
    return np.ascontiguousarray(a)


def _check_size(h: int, w: int, *, where: str) -> None:
    """Refuse an empty image or one with a side over :data:`MAX_SIDE` (which would abort OpenCV)."""
    if h < 1 or w < 1:
        raise ValueError(f"{where}: image has zero size, got {w}x{h} (width x height)")
    if max(h, w) > MAX_SIDE:
        raise ValueError(f"{where}: image side too long, got {w}x{h}; the limit is {MAX_SIDE} px a side")


def to_numpy_image(x: Any) -> np.ndarray:
    """Convert an in-memory image to ``[H, W, 3] uint8`` RGB.

    Args:
        x: a PIL image (any mode); a numpy array ``[H, W]`` or ``[H, W, C]`` (C in 1, 3, 4),
            uint8 or float in [0, 1]; or a torch tensor in torchvision layout ``[C, H, W]``
            (or ``[H, W]``), uint8 or float in [0, 1], on any device.

    Returns:
        [H, W, 3] uint8 RGB, C-contiguous (a new array; alpha channels are dropped).

    Raises:
        TypeError: ``x`` is none of the above.
        ValueError: wrong shape, an empty image, a side over :data:`MAX_SIDE`, or floats outside
            [0, 1] (NaN and infinities included).
    """
    if isinstance(x, Image.Image):
        _check_size(x.size[1], x.size[0], where="to_numpy_image(PIL)")
        x.load()
        return pil_to_rgb_array(x, where="to_numpy_image")
    if _is_tensor(x):
        t = x.detach()
        if t.ndim == 3:
            if t.shape[0] not in (1, 3, 4):
                raise ValueError("to_numpy_image: tensors must be [C, H, W] with C in 1, 3, 4 "
                                 f"(torchvision layout), got {list(t.shape)}")
            t = t.permute(1, 2, 0)
        elif t.ndim != 2:
            raise ValueError(f"to_numpy_image: tensors must be [C, H, W] or [H, W], got {list(t.shape)}")
        if t.dtype.is_floating_point and t.dtype not in (torch_mod().float16, torch_mod().float32, torch_mod().float64):
            t = t.float()  # bfloat16 etc.: numpy has no such type
        a = t.cpu().numpy()
        where = "to_numpy_image(tensor)"
    elif isinstance(x, np.ndarray):
        a = x
        where = "to_numpy_image(ndarray)"
        if a.ndim == 3 and a.shape[2] not in (1, 3, 4) and a.shape[0] in (1, 3, 4):
            raise ValueError(f"{where}: numpy images must be [H, W, C] (channels last), got "
                             f"{tuple(a.shape)}; use a.transpose(1, 2, 0)")
        if a.ndim not in (2, 3):
            raise ValueError(f"{where}: expected [H, W] or [H, W, C], got {tuple(a.shape)}")
    else:
        raise TypeError("to_numpy_image: expected a PIL image, numpy [H, W, C] array or torch [C, H, W] "
                        f"tensor, got {type(x).__name__}")
    if a.ndim >= 2:
        _check_size(a.shape[0], a.shape[1], where=where)
    if a.dtype == np.uint8:
        pass
    elif a.dtype.kind == "f":
        a = _float_to_uint8(a, where=where)
    elif a.dtype == np.bool_:
        a = a.astype(np.uint8) * 255
    else:
        raise TypeError(f"{where}: expected uint8 or float in [0, 1], got dtype {a.dtype}")
    return _hwc_to_rgb(a, where=where)


def restore_like(original: Any, array: np.ndarray) -> Any:
    """Convert an ``[H, W, 3] uint8`` result back to ``original``'s type, layout, dtype and device.

    The result may differ from ``original`` in height/width. Grayscale originals get the
    result's luminance (ITU-R 601, as PIL's ``L``); an alpha channel of the original is kept when
    the size is unchanged (else set opaque).

    Args:
        original: what :func:`to_numpy_image` was given.
        array: [H, W, 3] uint8 RGB.

    Returns:
        Same kind as ``original``: PIL image of the same mode (``L``, ``RGB``, ``RGBA``; other
        modes come back as ``RGB``), numpy array of the same ndim/channels/dtype, or tensor of
        the same layout/dtype/device.
    """
    if array.ndim != 3 or array.shape[2] != 3 or array.dtype != np.uint8:
        raise ValueError(f"restore_like: array must be [H, W, 3] uint8, got {array.shape} {array.dtype}")
    if isinstance(original, Image.Image):
        img = Image.fromarray(array, "RGB")
        if original.mode == "L":
            return img.convert("L")
        if original.mode == "RGBA":
            if original.size == img.size:
                img.putalpha(original.getchannel("A"))
            else:
                img = img.convert("RGBA")
        return img
    if _is_tensor(original):
        import torch

        channels = 1 if original.ndim == 2 else original.shape[0]
        a = _restore_channels(array, channels, _alpha_of_tensor(original, array.shape[:2]))
        t = torch.from_numpy(np.ascontiguousarray(a))
        t = t.permute(2, 0, 1) if original.ndim == 3 else t[..., 0]
        if original.dtype.is_floating_point:
            t = t.to(original.dtype) / 255.0
        else:
            t = t.to(original.dtype)
        return t.contiguous().to(original.device)
    if isinstance(original, np.ndarray):
        channels = 1 if original.ndim == 2 else original.shape[2]
        alpha = None
        if channels == 4 and original.shape[:2] == array.shape[:2]:
            alpha = original[..., 3]
            alpha = alpha if alpha.dtype == np.uint8 else _float_to_uint8(alpha, where="restore_like")
        a = _restore_channels(array, channels, alpha)
        if original.ndim == 2:
            a = a[..., 0]
        if original.dtype.kind == "f":
            return (a.astype(original.dtype) / original.dtype.type(255.0))
        return a.astype(original.dtype, copy=False)
    raise TypeError(f"restore_like: unsupported original type {type(original).__name__}")


def _alpha_of_tensor(t: Any, hw: tuple[int, int]) -> np.ndarray | None:
    if t.ndim == 3 and t.shape[0] == 4 and tuple(t.shape[1:]) == tuple(hw):
        a = t[3].detach().cpu().numpy()
        return a if a.dtype == np.uint8 else _float_to_uint8(a, where="restore_like")
    return None


def _restore_channels(array: np.ndarray, channels: int, alpha: np.ndarray | None) -> np.ndarray:
    if channels == 3:
        return array
    if channels == 1:
        lum = array.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
        return np.rint(lum).clip(0, 255).astype(np.uint8)[..., None]
    if channels == 4:
        if alpha is None:
            alpha = np.full(array.shape[:2], 255, np.uint8)
        return np.concatenate([array, alpha[..., None]], axis=2)
    raise ValueError(f"restore_like: cannot restore {channels} channels")


#: zlib strategy of the fast PNG levels (1-3) in `save_png` where ISA-L is missing: run-length matches only. Photos and
#: renders repeat mostly their neighbour after PNG's row filters, so this loses little against
#: the default strategy and skips its search.
PNG_FAST_STRATEGY = zlib.Z_RLE

#: zlib levels `save_png` encodes itself (`encode_png_fast`); the others go through Pillow.
PNG_FAST_LEVELS = (1, 2, 3)

#: PNG colour type by channels: grey, RGB, RGBA.
_PNG_COLOUR_TYPE = {1: 0, 3: 2, 4: 6}


def _png_chunk(tag: bytes, data: bytes) -> bytes:
    """One PNG chunk: length, tag, data, CRC-32 of tag + data."""
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(data, zlib.crc32(tag)))


#: The deflaters `encode_png_fast` can use; "auto": ISA-L where installed, else zlib.
PNG_DEFLATERS = ("auto", "isal", "zlib")


def _deflate(raw: np.ndarray, level: int, deflater: str) -> bytes:
    """A zlib stream of ``raw``'s bytes at ``level`` (1-3) by ``deflater`` (`PNG_DEFLATERS`)."""
    if deflater not in PNG_DEFLATERS:
        raise ValueError(f"encode_png_fast: deflater must be one of {PNG_DEFLATERS}, got {deflater!r}")
    if deflater != "zlib":
        try:
            from isal import isal_zlib
        except ImportError:  # isal is a core dependency; without it zlib still writes valid PNGs
            if deflater == "isal":
                raise
        else:
            return isal_zlib.compress(raw, level)
    deflate = zlib.compressobj(level, zlib.DEFLATED, 15, 9, PNG_FAST_STRATEGY)
    return deflate.compress(raw) + deflate.flush()


def encode_png_fast(array: np.ndarray, compress_level: int = 1, *, deflater: str = "auto") -> bytes:
    """Encode ``[H, W]`` / ``[H, W, 3|4]`` uint8 as a lossless 8-bit PNG, fast: every row filtered
    with PNG's "Up" filter (the difference to the row above, one vectorised subtraction), then
    deflated by ISA-L (`isal`, Intel's SIMD deflate, same level) where it is installed (a core
    dependency), else by zlib with :data:`PNG_FAST_STRATEGY`.

    Why: Pillow's encoder picks a filter per row by trying them all, which is most of its time on
    the 256 px outputs here (4.7 ms per image at level 1, files ~12% smaller); zlib's deflate at
    level 1 is then still ~98% of this encoder's time, and ISA-L's level 1 deflates the same rows
    about 3.5x faster (0.36 against 1.33 ms on a 256 px photo crop, 97 against 96 KB:
    ``scripts/bench_png.py``). The pixels never depend on the deflater; the file's bytes depend on
    the pixels and the deflater (ISA-L's version; zlib where ISA-L is missing), so one
    installation always writes the same bytes.

    Args:
        array: [H, W] grey, [H, W, 3] RGB or [H, W, 4] RGBA uint8.
        compress_level: zlib level 1-3.
        deflater: "auto" (ISA-L where installed, else zlib), "isal" or "zlib" (`PNG_DEFLATERS`):
            zlib writes the same bytes on every CPU and installation with the same zlib.

    Returns:
        The PNG file's bytes.

    Raises:
        ValueError: an unknown ``deflater``.
        ImportError: ``deflater="isal"`` without the isal package.
    """
    a = np.ascontiguousarray(array)
    h, w = a.shape[:2]
    channels = 1 if a.ndim == 2 else a.shape[2]
    rows = a.reshape(h, w * channels)
    raw = np.empty((h, w * channels + 1), np.uint8)
    raw[:, 0] = 2  # filter type Up: row - row above (the first row's "above" is zeros)
    raw[0, 1:] = rows[0]
    np.subtract(rows[1:], rows[:-1], out=raw[1:, 1:])
    idat = _deflate(raw, compress_level, deflater)
    header = struct.pack(">IIBBBBB", w, h, 8, _PNG_COLOUR_TYPE[channels], 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", idat) + _png_chunk(b"IEND", b"")


def save_png(path: str | os.PathLike, array: np.ndarray, *, compress_level: int = 1, fsync: bool = True) -> None:
    """Write ``[H, W, 3|4]`` (or ``[H, W]``) uint8 as a lossless PNG, atomically.

    Args:
        path: destination; its folder is created if missing.
        array: [H, W, 3|4] or [H, W] uint8.
        compress_level: zlib level 0-9, always lossless. Levels 1-3 (:data:`PNG_FAST_LEVELS`) use
            :func:`encode_png_fast` (one row filter, ISA-L's deflate): on 256 px face crops here
            ~0.4 ms and 118 KB at 1, against Pillow's 3.3 ms and 115 KB; the other levels use
            Pillow's adaptive filters (level 6: ~9.7 ms, 111 KB; 0: uncompressed).
        fsync: flush to disk before the rename (durability against power loss; a killed
            process never leaves a partial file either way).
    """
    if isinstance(compress_level, bool) or not isinstance(compress_level, int) or not 0 <= compress_level <= 9:
        raise ValueError(f"save_png: compress_level must be an int in 0..9, got {compress_level!r}")
    if array.dtype != np.uint8 or array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (3, 4)):
        raise ValueError(f"save_png: expected [H, W, 3|4] or [H, W] uint8, got {array.shape} {array.dtype}")
    if compress_level in PNG_FAST_LEVELS:
        data = encode_png_fast(array, compress_level)
    else:
        buf = io.BytesIO()
        Image.fromarray(np.ascontiguousarray(array)).save(buf, format="PNG", compress_level=compress_level)
        data = buf.getvalue()
    atomic_write_bytes(path, data, fsync=fsync)
