"""4D expression sequences on disk: a folder per sequence of registered meshes plus labels.

Layout of ``SEQ_DIR`` (every sequence must be in the model's topology and vertex order)::

    SEQ_DIR/
      labels.csv          optional; header ``sequence,category``: one row per sequence,
                          category from `CATEGORIES` or empty (unlabelled)
      va.csv              optional; header ``sequence,frame,valence,arousal``: per-frame VA,
                          frame = 0-based index into the sequence's sorted frames
      <sequence>/         one folder per sequence (folders starting with "." or "_" skipped)
        frames.npy        [T, V, 3] float vertex positions (np.load, allow_pickle=False), or
        *.obj | *.ply     one mesh per frame, sorted by name (natural order: f2 < f10);
                          OBJ: only the ``v`` lines are read, in file order; PLY: trimesh,
                          process=False (vertex order kept)
        va.csv            optional; header ``frame,valence,arousal`` (same as the top-level
                          file restricted to this sequence)

Units are the model's (cm for ICT-FaceKit); frames may carry any rigid head motion.
"""

from __future__ import annotations

import csv
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .facs import CATEGORIES

__all__ = ["Sequence", "SequenceError", "load_sequences", "read_frame"]


class SequenceError(ValueError):
    """A sequence folder, frame or label file is malformed (the message names the file)."""


@dataclass(frozen=True)
class Sequence:
    """One 4D sequence.

    Attributes:
        name: folder name.
        frames: [T, V, 3] float32 vertex positions in model units.
        category: one of `CATEGORIES`, or None when unlabelled.
        va: [T, 2] float32 (valence, arousal) per frame, NaN where unannotated; or None.
        source: the folder it was read from (or "" when built in memory).
    """

    name: str
    frames: np.ndarray
    category: "str | None" = None
    va: "np.ndarray | None" = None
    source: str = ""

    def __post_init__(self) -> None:
        f = np.asarray(self.frames)
        where = f"Sequence {self.name!r}" + (f" ('{self.source}')" if self.source else "")
        if f.ndim != 3 or f.shape[2] != 3 or f.shape[0] < 1:
            raise SequenceError(f"{where}: frames must be [T, V, 3] with T >= 1, got {list(f.shape)}")
        if not np.isfinite(f).all():
            raise SequenceError(f"{where}: frames contain non-finite values")
        object.__setattr__(self, "frames", f.astype(np.float32, copy=False))
        if self.category is not None and self.category not in CATEGORIES:
            raise SequenceError(f"{where}: category must be one of {CATEGORIES}, got {self.category!r}")
        if self.va is not None:
            va = np.asarray(self.va, dtype=np.float32)
            if va.shape != (f.shape[0], 2):
                raise SequenceError(f"{where}: va must be [{f.shape[0]}, 2], got {list(va.shape)}")
            ok = np.isfinite(va)
            if (np.abs(va[ok]) > 1).any():
                raise SequenceError(f"{where}: valence/arousal must be in [-1, 1]")
            object.__setattr__(self, "va", va)

    @property
    def num_frames(self) -> int:
        """T."""
        return int(self.frames.shape[0])


def _natural_key(p: Path) -> list[Any]:
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", p.name)]


def _read_obj(path: Path) -> np.ndarray:
    rows = []
    with open(path, "r", encoding="utf-8", errors="replace") as fh:
        for lineno, line in enumerate(fh, 1):
            if line.startswith("v "):
                parts = line.split()
                try:
                    rows.append((float(parts[1]), float(parts[2]), float(parts[3])))
                except (IndexError, ValueError):
                    raise SequenceError(f"read_frame: '{path}' line {lineno}: bad vertex line {line.strip()!r}") from None
    if not rows:
        raise SequenceError(f"read_frame: '{path}' has no vertices ('v x y z' lines)")
    return np.asarray(rows, dtype=np.float32)


def read_frame(path: "str | Path") -> np.ndarray:
    """Read one mesh frame's vertices ([V, 3] float32, file order) from OBJ or PLY.

    Raises:
        SequenceError: unreadable or empty file, or an unsupported extension.
    """
    path = Path(path)
    ext = path.suffix.lower()
    if ext == ".obj":
        return _read_obj(path)
    if ext == ".ply":
        import trimesh

        try:
            mesh = trimesh.load(path, process=False, force="mesh")
            v = np.asarray(mesh.vertices, dtype=np.float32)
        except Exception as e:  # trimesh raises many types on bad files
            raise SequenceError(f"read_frame: '{path}' is not a readable PLY: {e}") from None
        if v.ndim != 2 or v.shape[0] == 0:
            raise SequenceError(f"read_frame: '{path}' has no vertices")
        return v
    raise SequenceError(f"read_frame: '{path}': expected .obj or .ply, got {ext!r}")


def _read_csv(path: Path, required: tuple[str, ...]) -> list[tuple[int, dict[str, str]]]:
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            header = [h.strip() for h in (reader.fieldnames or [])]
            missing = [c for c in required if c not in header]
            if missing:
                raise SequenceError(f"load_sequences: '{path}': expected columns {list(required)}, header is {header}")
            rows = []
            for i, row in enumerate(reader, start=2):
                rows.append((i, {(k or "").strip(): (v or "").strip() for k, v in row.items()}))
            return rows
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise SequenceError(f"load_sequences: cannot read '{path}': {e}") from None


def _va_value(path: Path, line: int, row: dict[str, str], key: str) -> float:
    try:
        x = float(row[key])
    except (KeyError, ValueError):
        raise SequenceError(f"load_sequences: '{path}' line {line}: {key} must be a number, got {row.get(key)!r}") from None
    if not (math.isfinite(x) and -1.0 <= x <= 1.0):
        raise SequenceError(f"load_sequences: '{path}' line {line}: {key} must be in [-1, 1], got {x}")
    return x


def _frame_index(path: Path, line: int, row: dict[str, str], T: int) -> int:
    try:
        f = int(row["frame"])
    except (KeyError, ValueError):
        raise SequenceError(f"load_sequences: '{path}' line {line}: frame must be an integer, got {row.get('frame')!r}") from None
    if not 0 <= f < T:
        raise SequenceError(f"load_sequences: '{path}' line {line}: frame {f} out of range [0, {T})")
    return f


def _load_frames(folder: Path, num_vertices: "int | None") -> np.ndarray:
    npy = folder / "frames.npy"
    if npy.exists():
        try:
            frames = np.load(npy, allow_pickle=False)
        except (OSError, ValueError) as e:
            raise SequenceError(f"load_sequences: '{npy}' is not a readable .npy: {e}") from None
        if frames.ndim != 3 or frames.shape[2] != 3 or frames.shape[0] < 1:
            raise SequenceError(f"load_sequences: '{npy}': expected [T, V, 3], got {list(frames.shape)}")
        if num_vertices is not None and frames.shape[1] != num_vertices:
            raise SequenceError(
                f"load_sequences: '{npy}': expected {num_vertices} vertices (the basis), got {frames.shape[1]}"
            )
        if not np.issubdtype(frames.dtype, np.floating) or not np.isfinite(frames).all():
            raise SequenceError(f"load_sequences: '{npy}': expected finite float vertices, got dtype {frames.dtype}")
        return frames.astype(np.float32, copy=False)
    files = sorted((p for p in folder.iterdir() if p.suffix.lower() in (".obj", ".ply")), key=_natural_key)
    if not files:
        raise SequenceError(f"load_sequences: '{folder}': expected frames.npy or .obj/.ply frames, found none")
    out = []
    for p in files:
        v = read_frame(p)
        expected = num_vertices if num_vertices is not None else (out[0].shape[0] if out else v.shape[0])
        if v.shape[0] != expected:
            what = "the basis" if num_vertices is not None else f"'{files[0].name}'"
            raise SequenceError(f"load_sequences: '{p}': expected {expected} vertices ({what}), got {v.shape[0]}")
        out.append(v)
    return np.stack(out)


def load_sequences(seq_dir: "str | Path", *, num_vertices: "int | None" = None) -> list[Sequence]:
    """Read every sequence folder of ``seq_dir`` with its labels (layout in the module doc).

    Args:
        seq_dir: the folder of sequence folders.
        num_vertices: expected V (the basis's); None accepts any V consistent within a sequence.

    Returns:
        Sequences sorted by folder name.

    Raises:
        FileNotFoundError: ``seq_dir`` does not exist.
        SequenceError: naming the file: no sequences, an unreadable frame, a vertex-count
            mismatch, a bad CSV header or row, a label for an unknown sequence.
    """
    root = Path(seq_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"load_sequences: no such folder '{root}'")
    folders = sorted((p for p in root.iterdir() if p.is_dir() and not p.name.startswith((".", "_"))), key=_natural_key)
    if not folders:
        raise SequenceError(f"load_sequences: '{root}' has no sequence folders")
    names = {p.name for p in folders}

    categories: dict[str, str] = {}
    labels = root / "labels.csv"
    if labels.exists():
        for line, row in _read_csv(labels, ("sequence", "category")):
            seq, cat = row["sequence"], row["category"]
            if seq not in names:
                raise SequenceError(f"load_sequences: '{labels}' line {line}: unknown sequence {seq!r}")
            if cat and cat not in CATEGORIES:
                raise SequenceError(
                    f"load_sequences: '{labels}' line {line}: category must be one of {CATEGORIES}, got {cat!r}"
                )
            if cat:
                categories[seq] = cat

    frames = {p.name: _load_frames(p, num_vertices) for p in folders}
    va = {n: np.full((f.shape[0], 2), np.nan, dtype=np.float32) for n, f in frames.items()}
    has_va: set[str] = set()
    top = root / "va.csv"
    if top.exists():
        for line, row in _read_csv(top, ("sequence", "frame", "valence", "arousal")):
            seq = row["sequence"]
            if seq not in names:
                raise SequenceError(f"load_sequences: '{top}' line {line}: unknown sequence {seq!r}")
            f = _frame_index(top, line, row, frames[seq].shape[0])
            va[seq][f] = (_va_value(top, line, row, "valence"), _va_value(top, line, row, "arousal"))
            has_va.add(seq)
    for p in folders:
        local = p / "va.csv"
        if local.exists():
            for line, row in _read_csv(local, ("frame", "valence", "arousal")):
                f = _frame_index(local, line, row, frames[p.name].shape[0])
                va[p.name][f] = (_va_value(local, line, row, "valence"), _va_value(local, line, row, "arousal"))
                has_va.add(p.name)

    return [
        Sequence(p.name, frames[p.name], categories.get(p.name), va[p.name] if p.name in has_va else None, str(p))
        for p in folders
    ]
