"""Safe, collision-free output names for batch outputs, and input discovery.

Layout ``"nested"`` (default) keeps the input's subfolders and gives each source image a
folder named ``<stem>_<ext>``; each output inside it is ``f<face>_<target slug>.png``::

    INPUT_DIR/train/happy/img.jpg -> OUTPUT_DIR/train/happy/img_jpg/f0_sadness_i1.00.png

Why collision-free: two sources in the same folder differ in stem or extension, and the
extension (from :data:`~affectsynth.images.IMAGE_EXTENSIONS`, no underscore) is the text after
the last ``_`` of ``<stem>_<ext>``, so different sources get different folders; files in
different subfolders land in different subfolders. Layout ``"flat"`` writes everything into
OUTPUT_DIR as ``<stem>_<ext>-<12 hex digits of blake2b(relative path)>__f<face>_<slug>.png``.

Names that are not safe as they stand (characters such as ``<>:"\\|?*`` or control characters,
undecodable bytes, a name too long once escaped) keep a readable form and gain a marker
``~<10 hex digits>``: a blake2b digest of the source's display path up to that component::

    INPUT_DIR/a:b.jpg -> OUTPUT_DIR/a_b~2e0e755988_jpg/f0_happiness_i1.00.png

Ordinary names keep the layout above, so outputs of earlier runs stay valid. The mapping is
injective: an unmarked name is the original (which never ends in a marker: such originals are
marked too), and two marked names differ in their digests. Paths are keyed by their display
form (:func:`display_path`): undecodable bytes (``surrogateescape``) become ``\\xNN``, control
characters ``\\xNN`` / ``\\uNNNN``, a backslash ``\\\\``; one display form per byte path.

Target slugs: ``happiness_i1.00``, ``va_+0.50_-0.25``, ``aus_AU12-0.80_AU6-0.50``.

Frames of an affect sequence (``generate --paths``, :func:`frame_relpath`) go into one folder per
(face, sequence) beside the source's other outputs, named as ``affectsynth animate`` names PNG
frames; the flat layout joins the parts with ``_``::

    nested: OUTPUT_DIR/train/img_jpg/f0_path-circle/frame_0007.png
    flat:   OUTPUT_DIR/img_jpg-<12 hex>__f0_path-circle_frame_0007.png

No target slug starts with ``path-``, so frames never collide with single outputs.

With ``--image-format webp`` (`affectsynth.output_images`) every name above ends in ``.webp``
instead of ``.png``: the rest of the name does not change.
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
from pathlib import Path, PurePosixPath
from typing import Any, Iterator

from affectsynth.images import IMAGE_EXTENSIONS
from affectsynth.output_images import image_suffix

__all__ = [
    "LAYOUTS",
    "UnsafePathError",
    "display_path",
    "find_images",
    "frame_relpath",
    "output_relpath",
    "safe_join",
    "sequence_slug",
    "source_relpath",
    "target_slug",
]

LAYOUTS = ("nested", "flat")

_UNSAFE_CHARS = re.compile(r'[\x00-\x1f\x7f<>:"\\|?*]')
#: Characters :func:`display_path` escapes: backslash, C0/C1 controls, line/paragraph separators, lone surrogates.
_ESCAPED_CHARS = re.compile(r"[\\\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")
_MARKER = re.compile(r"~[0-9a-f]{10}$")
_SAFE_EXT = re.compile(r"^[A-Za-z0-9]+$")
#: Longest output name component (bytes, UTF-8) before it is shortened and marked.
_MAX_COMPONENT_BYTES = 200


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


def _escape_char(m: re.Match) -> str:
    c = m.group(0)
    if c == "\\":
        return "\\\\"
    o = ord(c)
    if 0xDC80 <= o <= 0xDCFF:  # an undecodable byte, as os.fsdecode (surrogateescape) gives it
        return f"\\x{o - 0xDC00:02x}"
    return f"\\x{o:02x}" if o < 0x100 else f"\\u{o:04x}"


def display_path(path: str | os.PathLike) -> str:
    """The printable, UTF-8-safe form of a (relative) path, one per byte path.

    Undecodable bytes (``surrogateescape``) become ``\\xNN``, control characters ``\\xNN`` or
    ``\\uNNNN``, and a backslash ``\\\\``, so different paths keep different display forms.
    Ordinary names are returned unchanged. Manifest rows, seeds and output names use this form.

    Args:
        path: a path as ``os`` functions return it (str, possibly with surrogates) or bytes.

    Example:
        >>> display_path(os.fsdecode(b"caf\\xe9.jpg")), display_path("a\\nb.jpg"), display_path("a/b.jpg")
        ('caf\\\\xe9.jpg', 'a\\\\x0ab.jpg', 'a/b.jpg')
    """
    text = os.fsdecode(path) if isinstance(path, bytes) else os.fspath(path)
    return _ESCAPED_CHARS.sub(_escape_char, text)


def _digest(text: str, n: int = 10) -> str:
    return hashlib.blake2b(text.encode("utf-8", "surrogateescape"), digest_size=8).hexdigest()[:n]


def _clean_component(name: str) -> str:
    name = _UNSAFE_CHARS.sub("_", name)
    if name in ("", ".", ".."):
        raise UnsafePathError(f"unsafe path component {name!r}")
    return name


def _shorten(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` UTF-8 bytes (on a character boundary)."""
    return text.encode("utf-8", "surrogateescape")[:limit].decode("utf-8", "ignore")


def _marked(clean: str, key: str, room: int = _MAX_COMPONENT_BYTES) -> str:
    """``clean`` (shortened to fit) plus the marker of ``key`` (the display path it stands for)."""
    return f"{_shorten(clean, room - 11)}~{_digest(key)}"


def _safe_dir(name: str, key: str) -> str:
    """One folder name: ``name`` itself when safe, else its cleaned form plus a marker."""
    if name in ("", ".", ".."):
        raise UnsafePathError(f"unsafe path component {name!r}")
    clean = _UNSAFE_CHARS.sub("_", name)
    if clean == name and not _MARKER.search(name) and len(name.encode("utf-8")) <= _MAX_COMPONENT_BYTES:
        return name
    return _marked(clean, key)


def _safe_base(name: str, key: str) -> str:
    """A source file's folder name ``<stem>_<ext>``, marked (before ``_<ext>``) when not safe as it is."""
    stem, ext = os.path.splitext(name)
    ext = ext[1:]
    if not _SAFE_EXT.match(ext):  # no (or an odd) extension: keep the whole name readable, mark it
        return _marked(_UNSAFE_CHARS.sub("_", name), key) + "_"
    clean = _UNSAFE_CHARS.sub("_", stem)
    if (clean == stem and stem not in ("", ".", "..") and not _MARKER.search(stem)
            and len(name.encode("utf-8")) <= _MAX_COMPONENT_BYTES):
        return f"{stem}_{ext}"
    return f"{_marked(clean, key, _MAX_COMPONENT_BYTES - len(ext) - 1)}_{ext}"


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
                   layout: str = "nested", image_format: str = "png") -> PurePosixPath:
    """Relative output path for one (source, face, target).

    Args:
        rel_source: the source's path relative to INPUT_DIR (POSIX, from :func:`source_relpath`),
            best in its :func:`display_path` form (what the engine passes).
        slug: :func:`target_slug` of the target.
        face: face index in the photo (0 = largest).
        layout: "nested" or "flat" (see the module docstring).
        image_format: the output's format, "png" or "webp" (`affectsynth.output_images`): its suffix.

    Raises:
        UnsafePathError: ``rel_source`` is absolute or contains ``..``.
        ValueError: unknown layout or image format, or a bad face index.
    """
    rel = _check_source(rel_source, face, layout, "output_relpath")
    slug = _clean_component(slug.replace("/", "_"))
    return _source_output(rel, (f"f{face}_{slug}{image_suffix(image_format)}",), layout)


def _check_source(rel_source: str | PurePosixPath, face: int, layout: str, where: str) -> PurePosixPath:
    if layout not in LAYOUTS:
        raise ValueError(f"{where}: layout must be one of {LAYOUTS}, got {layout!r}")
    if isinstance(face, bool) or not isinstance(face, int) or face < 0:
        raise ValueError(f"{where}: face must be an int >= 0, got {face!r}")
    rel = PurePosixPath(rel_source)
    if rel.is_absolute() or ".." in rel.parts or not rel.parts or str(rel) == ".":
        raise UnsafePathError(f"{where}: source path must be relative without '..', got {str(rel)!r}")
    return rel


def _source_output(rel: PurePosixPath, leaf: tuple[str, ...], layout: str) -> PurePosixPath:
    """The output path of ``leaf`` (name parts below the source's folder) in ``layout``."""
    parts = rel.parts
    if layout == "nested":
        dirs = [_safe_dir(d, "/".join(parts[: i + 1])) for i, d in enumerate(parts[:-1])]
        return PurePosixPath(*dirs, _safe_base(rel.name, str(rel)), *leaf)
    stem, ext = os.path.splitext(rel.name)
    base = _shorten(_clean_component(f"{stem}_{ext.lstrip('.')}" if ext else f"{stem}_"), 150)
    digest = hashlib.blake2b(str(rel).encode("utf-8", "surrogateescape"), digest_size=6).hexdigest()
    return PurePosixPath(f"{base}-{digest}__{'_'.join(leaf)}")


def sequence_slug(name: str) -> str:
    """The name part of a sequence's outputs: ``path-<name>`` (no target slug starts with ``path-``).

    Example:
        >>> sequence_slug("circle")
        'path-circle'
    """
    return "path-" + _clean_component(str(name).replace("/", "_"))


def frame_relpath(rel_source: str | PurePosixPath, sequence: str, index: int, face: int = 0, *,
                  layout: str = "nested", image_format: str = "png") -> PurePosixPath:
    """Relative output path of frame ``index`` of sequence ``sequence`` on face ``face``.

    Nested: ``<source folder>/f<face>_path-<sequence>/frame_<index:04d>.png`` (the frame names of
    ``affectsynth animate``); flat: ``<base>-<hash>__f<face>_path-<sequence>_frame_<index:04d>.png``.

    Args:
        rel_source: the source's path relative to INPUT_DIR (as for :func:`output_relpath`).
        sequence: the sequence's name (`affectsynth.paths_file.SequenceSpec.name`).
        index: frame number, >= 0.
        face: face index in the photo (0 = largest).
        layout: "nested" or "flat".
        image_format: the frames' format, "png" or "webp": their suffix.

    Raises:
        UnsafePathError: ``rel_source`` is absolute or contains ``..``.
        ValueError: unknown layout or image format, a bad face or frame index.

    Example:
        >>> frame_relpath("a/img.jpg", "circle", 7).as_posix()
        'a/img_jpg/f0_path-circle/frame_0007.png'
    """
    from affectsynth.video import frame_name

    rel = _check_source(rel_source, face, layout, "frame_relpath")
    if isinstance(index, bool) or not isinstance(index, int) or index < 0:
        raise ValueError(f"frame_relpath: index must be an int >= 0, got {index!r}")
    return _source_output(rel, (f"f{face}_{sequence_slug(sequence)}", frame_name(index, image_format)), layout)


def safe_join(root: str | os.PathLike, rel: str | PurePosixPath) -> Path:
    """``root / rel``, guaranteed to stay inside ``root``.

    Rejects absolute paths, ``..`` components, and existing symlinks (file or folder) on
    the way that resolve outside ``root``. Without ``..``, only a symlink below ``root`` can lead
    out of it: the path is resolved only when one is on the way (one ``lstat`` per existing
    component instead of resolving ``root`` and the path on every call).

    Raises:
        UnsafePathError: the path would escape ``root``.
    """
    rel_p = PurePosixPath(rel)
    if rel_p.is_absolute() or ".." in rel_p.parts or not rel_p.parts or Path(str(rel)).is_absolute():
        raise UnsafePathError(f"safe_join: {str(rel)!r} is absolute or contains '..'")
    root_p = Path(root)
    out = root_p.joinpath(*rel_p.parts)
    if _symlink_below(os.fspath(root_p), rel_p.parts):
        root_real = os.path.realpath(root_p)
        real = os.path.realpath(out)
        if os.path.commonpath([root_real, real]) != root_real:
            raise UnsafePathError(f"safe_join: {str(rel)!r} resolves outside {root} (symlink?)")
    return out


def _symlink_below(root: str, parts: tuple[str, ...]) -> bool:
    """Whether one of the existing paths ``root/parts[0]``, ``root/parts[0]/parts[1]``, ... is a symlink
    (below a missing one nothing exists)."""
    cur = root
    for part in parts:
        cur = os.path.join(cur, part)
        try:
            if stat.S_ISLNK(os.lstat(cur).st_mode):
                return True
        except OSError:  # missing (or under a file): nothing further down exists
            return False
    return False


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
