"""Safe, collision-free output names for batch outputs, and input discovery.

Layout ``"nested"`` (default) keeps the input's subfolders and gives each source image a
folder named ``<stem>_<ext>``; each output inside it is ``f<face>_<target slug>.png``::

    INPUT_DIR/train/happy/img.jpg -> OUTPUT_DIR/train/happy/img_jpg/f0_sadness_i1.00.png

Why collision-free: two sources in the same folder differ in stem or extension, and the
extension (from :data:`~affectsynth.images.IMAGE_EXTENSIONS`, no underscore) is the text after
the last ``_`` of ``<stem>_<ext>``, so different sources get different folders; files in
different subfolders land in different subfolders. Layout ``"flat"`` writes everything into
OUTPUT_DIR as ``<stem>_<ext>-<12 hex digits of blake2b(relative path)>__f<face>_<slug>.png``.

Target slugs: ``happiness_i1.00``, ``va_+0.50_-0.25``, ``aus_AU12-0.80_AU6-0.50``.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path, PurePosixPath
from typing import Any, Iterator

from affectsynth.images import IMAGE_EXTENSIONS

__all__ = [
    "LAYOUTS",
    "UnsafePathError",
    "find_images",
    "output_relpath",
    "safe_join",
    "source_relpath",
    "target_slug",
]

LAYOUTS = ("nested", "flat")

_UNSAFE_CHARS = re.compile(r'[\x00-\x1f\x7f<>:"\\|?*]')


class UnsafePathError(ValueError):
    """A derived path would leave its root folder (``..``, absolute, or a symlink out)."""


def target_slug(target: Any) -> str:
    """A short, file-name-safe, unique name for a target.

    Args:
        target: an ``affectsynth.blendshapes`` `Expression`, `VA` or `AUs` (anything with
            ``kind`` and the matching fields).

    Example:
        >>> from affectsynth.blendshapes.targets import Expression, VA
        >>> target_slug(Expression("happiness", 1.0)), target_slug(VA(0.5, -0.25))
        ('happiness_i1.00', 'va_+0.50_-0.25')
    """
    kind = getattr(target, "kind", None)
    if kind == "expression":
        return f"{target.name}_i{target.intensity:.2f}"
    if kind == "va":
        return f"va_{target.valence:+.2f}_{target.arousal:+.2f}"
    if kind == "aus":
        parts = [f"{k}-{v:.2f}" for k, v in sorted(target.units.items())]
        slug = "aus_" + "_".join(parts) if parts else "aus_none"
        if len(slug) > 100:
            slug = "aus_" + hashlib.blake2b(slug.encode(), digest_size=6).hexdigest()
        return slug
    raise TypeError(f"target_slug: expected an Expression, VA or AUs target, got {type(target).__name__}")


def _clean_component(name: str) -> str:
    name = _UNSAFE_CHARS.sub("_", name)
    if name in ("", ".", ".."):
        raise UnsafePathError(f"unsafe path component {name!r}")
    return name


def source_relpath(path: str | os.PathLike, input_dir: str | os.PathLike) -> PurePosixPath:
    """The source's path relative to ``input_dir`` (POSIX form), refusing paths outside it.

    Raises:
        UnsafePathError: ``path`` is not under ``input_dir``.
    """
    root = os.path.abspath(input_dir)
    p = os.path.abspath(path)
    rel = os.path.relpath(p, root)
    parts = PurePosixPath(*Path(rel).parts).parts
    if rel.startswith("..") or os.path.isabs(rel) or ".." in parts or not parts:
        raise UnsafePathError(f"{path}: not inside the input folder {input_dir}")
    return PurePosixPath(*parts)


def output_relpath(rel_source: str | PurePosixPath, slug: str, face: int = 0, *,
                   layout: str = "nested") -> PurePosixPath:
    """Relative output path for one (source, face, target).

    Args:
        rel_source: the source's path relative to INPUT_DIR (POSIX, from :func:`source_relpath`).
        slug: :func:`target_slug` of the target.
        face: face index in the photo (0 = largest).
        layout: "nested" or "flat" (see the module docstring).

    Raises:
        UnsafePathError: ``rel_source`` is absolute or contains ``..``.
        ValueError: unknown layout or a bad face index.
    """
    if layout not in LAYOUTS:
        raise ValueError(f"output_relpath: layout must be one of {LAYOUTS}, got {layout!r}")
    if isinstance(face, bool) or not isinstance(face, int) or face < 0:
        raise ValueError(f"output_relpath: face must be an int >= 0, got {face!r}")
    rel = PurePosixPath(rel_source)
    if rel.is_absolute() or ".." in rel.parts or not rel.parts or str(rel) == ".":
        raise UnsafePathError(f"output_relpath: source path must be relative without '..', got {str(rel)!r}")
    slug = _clean_component(slug.replace("/", "_"))
    name = rel.name
    stem, ext = os.path.splitext(name)
    base = _clean_component(f"{stem}_{ext.lstrip('.')}" if ext else f"{stem}_")
    leaf = f"f{face}_{slug}.png"
    if layout == "nested":
        dirs = [_clean_component(d) for d in rel.parts[:-1]]
        return PurePosixPath(*dirs, base, leaf)
    digest = hashlib.blake2b(str(rel).encode("utf-8"), digest_size=6).hexdigest()
    return PurePosixPath(f"{base}-{digest}__{leaf}")


def safe_join(root: str | os.PathLike, rel: str | PurePosixPath) -> Path:
    """``root / rel``, guaranteed to stay inside ``root``.

    Rejects absolute paths, ``..`` components, and existing symlinks (file or folder) on
    the way that resolve outside ``root``.

    Raises:
        UnsafePathError: the path would escape ``root``.
    """
    rel_p = PurePosixPath(rel)
    if rel_p.is_absolute() or ".." in rel_p.parts or not rel_p.parts or Path(str(rel)).is_absolute():
        raise UnsafePathError(f"safe_join: {str(rel)!r} is absolute or contains '..'")
    root_p = Path(root)
    out = root_p.joinpath(*rel_p.parts)
    root_real = os.path.realpath(root_p)
    real = os.path.realpath(out)
    if os.path.commonpath([root_real, real]) != root_real:
        raise UnsafePathError(f"safe_join: {str(rel)!r} resolves outside {root} (symlink?)")
    return out


def find_images(input_dir: str | os.PathLike, *, exclude: str | os.PathLike | None = None) -> Iterator[Path]:
    """Image files under ``input_dir``, recursively, in a stable (sorted) order.

    Extensions: :data:`~affectsynth.images.IMAGE_EXTENSIONS`, case-insensitive. Hidden files
    and folders (leading ``.``) are skipped; symlinked folders are not followed; ``exclude``
    (e.g. an OUTPUT_DIR inside INPUT_DIR) is skipped.
    """
    root = Path(input_dir)
    if not root.is_dir():
        raise NotADirectoryError(f"{input_dir}: not a folder")
    excl = os.path.realpath(exclude) if exclude is not None else None
    for cur, dirs, files in os.walk(root, followlinks=False):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".")
                         and (excl is None or os.path.realpath(os.path.join(cur, d)) != excl))
        for f in sorted(files):
            if f.startswith("."):
                continue
            if os.path.splitext(f)[1].lower() in IMAGE_EXTENSIONS:
                yield Path(cur) / f
