"""Atomic file writes: write a temporary file in the target's folder, fsync, then ``os.replace``.

A reader (or a resumed run) sees either the old file or the complete new one, never a partial
file. Temporary files carry the suffix :data:`TMP_SUFFIX`; a run killed mid-write leaves at most
such files behind, and :func:`remove_stale_temps` deletes them.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import IO, Iterator

__all__ = [
    "TMP_SUFFIX",
    "atomic_write",
    "atomic_write_bytes",
    "atomic_write_text",
    "remove_stale_temps",
]

TMP_SUFFIX = ".affectsynth-tmp"


def _fsync_dir(folder: Path) -> None:
    """Flush a directory entry (the rename) to disk; a no-op where directories can't be opened."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "wb", *, fsync: bool = True,
                 encoding: str | None = None, newline: str | None = None) -> Iterator[IO]:
    """Open a temporary file next to ``path``; on a clean exit it replaces ``path`` atomically.

    Args:
        path: final file path; its folder is created if missing.
        mode: ``"wb"`` or ``"w"`` (text).
        fsync: flush file and folder to disk before returning (durable against power loss).
        encoding: text encoding for ``mode="w"`` (default UTF-8).
        newline: passed to ``open`` in text mode.

    Yields:
        The open temporary file. If the body raises, the temporary file is removed and
        ``path`` is left untouched.

    Example:
        >>> import tempfile, pathlib
        >>> d = pathlib.Path(tempfile.mkdtemp())
        >>> with atomic_write(d / "a.txt", "w") as f:
        ...     _ = f.write("hello")
        >>> (d / "a.txt").read_text()
        'hello'
    """
    if mode not in ("wb", "w"):
        raise ValueError(f"atomic_write: mode must be 'wb' or 'w', got {mode!r}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix="." + path.name[:80] + ".", suffix=TMP_SUFFIX,
                                    dir=path.parent)
    tmp = Path(tmp_name)
    done = False
    try:
        if mode == "wb":
            f = os.fdopen(fd, "wb")
        else:
            f = os.fdopen(fd, "w", encoding=encoding or "utf-8", newline=newline)
        with f:
            yield f
            f.flush()
            if fsync:
                os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
        done = True
    finally:
        if not done:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
    if fsync:
        _fsync_dir(path.parent)


def atomic_write_bytes(path: str | os.PathLike, data: bytes, *, fsync: bool = True) -> None:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_write`)."""
    with atomic_write(path, "wb", fsync=fsync) as f:
        f.write(data)


def atomic_write_text(path: str | os.PathLike, text: str, *, fsync: bool = True) -> None:
    """Write UTF-8 ``text`` to ``path`` atomically (see :func:`atomic_write`)."""
    atomic_write_bytes(path, text.encode("utf-8"), fsync=fsync)


def remove_stale_temps(folder: str | os.PathLike) -> int:
    """Delete temporary files left under ``folder`` (recursively) by killed writers.

    Only call this when no other writer is active in ``folder``.

    Returns:
        The number of files removed.
    """
    n = 0
    for root, _dirs, files in os.walk(folder):
        for name in files:
            if name.endswith(TMP_SUFFIX):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(os.path.join(root, name))
                    n += 1
    return n
