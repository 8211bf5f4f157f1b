"""Frame-sequence writers: PNG frames, animated GIF and WebP (Pillow), MP4 (optional extra).

`WRITERS` is the registry (format -> writer); `video_formats` lists the formats that work in
this install. Every writer takes the whole sequence, writes to a temporary name and renames, so
a reader never sees a partial file. MP4 needs ``pip install 'affectsynth[video]'``
(imageio-ffmpeg, which ships an ffmpeg binary in its wheel).
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from affectsynth.atomic import TMP_SUFFIX, atomic_write_bytes

__all__ = ["MP4_INSTALL", "WRITERS", "frame_name", "video_formats", "write_frames"]

#: The install command of the MP4 writer's dependency.
MP4_INSTALL = "pip install 'affectsynth[video]'  (imageio-ffmpeg)"


def frame_name(index: int, image_format: str = "png") -> str:
    """File name of frame ``index`` in a frames folder: ``frame_0000.png`` (``.webp`` for "webp")."""
    from affectsynth.output_images import image_suffix

    return f"frame_{index:04d}{image_suffix(image_format)}"


def _check_frames(frames: Sequence[np.ndarray], where: str) -> tuple[int, int]:
    if not frames:
        raise ValueError(f"{where}: expected at least one frame, got none")
    h, w = frames[0].shape[:2]
    for i, f in enumerate(frames):
        if not isinstance(f, np.ndarray) or f.dtype != np.uint8 or f.ndim != 3 or f.shape != (h, w, 3):
            got = f"{getattr(f, 'shape', type(f).__name__)} {getattr(f, 'dtype', '')}"
            raise ValueError(f"{where}: frame {i} must be [{h}, {w}, 3] uint8 like frame 0, got {got}")
    return h, w


def _write_png_frames(path: Path, frames: Sequence[np.ndarray], fps: float, quality: int) -> list[Path]:
    from affectsynth.images import save_png

    _check_frames(frames, "write_frames(png)")
    path.mkdir(parents=True, exist_ok=True)
    out = []
    for i, f in enumerate(frames):
        p = path / frame_name(i)
        save_png(p, f, fsync=False)
        out.append(p)
    return out


def _durations(n: int, fps: float, unit_ms: int = 1) -> list[int]:
    # whole units (GIF counts 10 ms) whose running sum follows the frame times: no drift over long sequences
    ends = [unit_ms * round(1000.0 * (i + 1) / fps / unit_ms) for i in range(n)]
    return [e - s for s, e in zip([0] + ends[:-1], ends)]


def _write_gif(path: Path, frames: Sequence[np.ndarray], fps: float, quality: int) -> list[Path]:
    from PIL import Image

    _check_frames(frames, "write_frames(gif)")
    # one palette for the whole sequence, no dithering: pixels that do not change between frames
    # map to the same index in every frame (per-frame palettes or dithering would make them flicker)
    step = max(1, len(frames) // 16)
    sample = np.concatenate(list(frames[::step]), axis=0)
    palette = Image.fromarray(sample).quantize(colors=256, method=Image.Quantize.MEDIANCUT)
    images = [Image.fromarray(f).quantize(palette=palette, dither=Image.Dither.NONE) for f in frames]
    buf = io.BytesIO()
    images[0].save(buf, format="GIF", save_all=True, append_images=images[1:], loop=0,
                   duration=_durations(len(frames), fps, 10), optimize=False, disposal=1)
    atomic_write_bytes(path, buf.getvalue(), fsync=False)
    return [path]


def _write_webp(path: Path, frames: Sequence[np.ndarray], fps: float, quality: int) -> list[Path]:
    from PIL import Image

    _check_frames(frames, "write_frames(webp)")
    images = [Image.fromarray(f) for f in frames]
    buf = io.BytesIO()
    images[0].save(buf, format="WEBP", save_all=True, append_images=images[1:], loop=0,
                   duration=_durations(len(frames), fps), lossless=quality >= 100,
                   quality=min(quality, 100), method=4)
    atomic_write_bytes(path, buf.getvalue(), fsync=False)
    return [path]


def _write_mp4(path: Path, frames: Sequence[np.ndarray], fps: float, quality: int) -> list[Path]:
    try:
        import imageio_ffmpeg
    except ImportError:
        raise ImportError(f"write_frames: mp4 needs imageio-ffmpeg; install it with {MP4_INSTALL}, "
                          "or write png, gif or webp") from None
    h, w = _check_frames(frames, "write_frames(mp4)")
    ph, pw = h + h % 2, w + w % 2  # yuv420p needs even sides: pad by edge pixels, never resample
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}{TMP_SUFFIX}")
    writer = imageio_ffmpeg.write_frames(str(tmp), (pw, ph), fps=float(fps), codec="libx264",
                                         pix_fmt_out="yuv420p", macro_block_size=1,
                                         quality=max(0.0, min(10.0, quality / 10.0)),
                                         output_params=["-f", "mp4", "-movflags", "+faststart"])
    try:
        writer.send(None)
        for f in frames:
            if (ph, pw) != (h, w):
                f = np.pad(f, ((0, ph - h), (0, pw - w), (0, 0)), mode="edge")
            writer.send(np.ascontiguousarray(f))
        writer.close()
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return [path]


#: format -> writer(path, frames, fps, quality) -> written paths.
WRITERS: dict[str, Callable[[Path, Sequence[np.ndarray], float, int], list[Path]]] = {
    "png": _write_png_frames,
    "gif": _write_gif,
    "webp": _write_webp,
    "mp4": _write_mp4,
}


def video_formats() -> list[str]:
    """The formats of `WRITERS` that work in this install (mp4 only with imageio-ffmpeg)."""
    out = []
    for fmt in WRITERS:
        if fmt == "mp4":
            try:
                import imageio_ffmpeg  # noqa: F401
            except ImportError:
                continue
        out.append(fmt)
    return out


def write_frames(path: str | os.PathLike, frames: Sequence[np.ndarray], *, fmt: str, fps: float,
                 quality: int = 90) -> list[Path]:
    """Write a frame sequence as PNG frames (``path`` a folder), GIF, WebP or MP4 (``path`` a file).

    Args:
        path: a folder for "png" (frames `frame_name` (i)), else the video file.
        frames: T [H, W, 3] uint8 RGB frames of one size.
        fmt: "png", "gif", "webp" or "mp4" (see `video_formats`).
        fps: frames per second, > 0.
        quality: 1-100; WebP lossy quality (100 = lossless), MP4 quality (x264 through
            imageio-ffmpeg's 0-10 scale); PNG and GIF ignore it.

    Returns:
        The written paths (T frames for "png", one file otherwise).

    Raises:
        ValueError: unknown format, no frames, frames of different sizes, bad fps or quality.
        ImportError: "mp4" without imageio-ffmpeg (names the install command).
    """
    if fmt not in WRITERS:
        raise ValueError(f"write_frames: format must be one of {', '.join(WRITERS)}, got {fmt!r}")
    if not (isinstance(fps, (int, float)) and np.isfinite(fps) and fps > 0):
        raise ValueError(f"write_frames: fps must be a finite number > 0, got {fps!r}")
    if isinstance(quality, bool) or not isinstance(quality, int) or not 1 <= quality <= 100:
        raise ValueError(f"write_frames: quality must be an int in 1..100, got {quality!r}")
    return WRITERS[fmt](Path(path), frames, float(fps), quality)
