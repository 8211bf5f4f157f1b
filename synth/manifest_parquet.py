"""The Parquet copy of the manifest: ``manifest.parquet``, rebuilt atomically from the CSV journal.

Design: ``manifest.csv`` stays the source of truth for resume (append-only, one fsync'd write per
image, repaired on open after a crash). Parquet cannot be appended to safely, so ``generate
--manifest-format parquet`` rewrites ``manifest.parquet`` from the journal's rows at the end of
every run, also an interrupted or failed one (written to a temporary file, then renamed: a run
killed during that write leaves the previous complete file). A run that cannot rewrite it (disk
full) leaves the previous one; the next run rewrites it. Once a ``manifest.parquet`` exists it is
kept in step by every later run, whatever its ``--manifest-format``, so it never silently lags.

Columns: those of the CSV (`affectsynth.manifest.COLUMNS`) in the same order, typed as
`affectsynth.manifest.COLUMN_TYPES` says (int64, float64, bool, string; empty fields are nulls),
except ``landmarks``, a list of [x, y] pairs (``list<list<double>>``) instead of JSON text. Values
are those the CSV holds (floats at its 6 significant digits), so both files say the same.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from affectsynth.atomic import atomic_write_bytes
from affectsynth.manifest import COLUMN_TYPES, COLUMNS, ManifestRow, format_field

__all__ = ["PARQUET_NAME", "manifest_table", "require_pyarrow", "write_parquet"]

PARQUET_NAME = "manifest.parquet"

#: Columns stored as lists in Parquet (JSON text in the CSV).
LIST_COLUMNS = ("landmarks",)


def require_pyarrow() -> Any:
    """The pyarrow module (with ``pyarrow.parquet`` loaded).

    Raises:
        ImportError: pyarrow is not installed; the message gives the install command.
    """
    try:
        import pyarrow
        import pyarrow.parquet  # noqa: F401
    except ImportError:
        raise ImportError("--manifest-format parquet needs pyarrow: pip install 'affectsynth[parquet]' "
                          "(or pip install pyarrow)") from None
    return pyarrow


def _csv_float(v: Any) -> float | None:
    """A float as the CSV holds it (the CSV's own formatting, `affectsynth.manifest.format_field`:
    6 significant digits; None and NaN are an empty field, here a null)."""
    text = format_field(v)
    return float(text) if text else None


def _points_array(pa: Any, texts: list[str]) -> Any:
    """``list<list<double>>`` of JSON ``[[x, y], ...]`` texts ("" is null), parsed by numpy in one pass
    (json.loads and pyarrow's conversion of nested lists cost about 1 ms a row here)."""
    flat_texts, counts, valid = [], [], []
    for t in texts:
        if t:
            body = t.replace("[", "").replace("]", "").strip()
            n = body.count(",") + 1 if body else 0
            if n % 2:
                raise ValueError(f"landmarks: expected [[x, y], ...], got {t[:60]!r}")
            if body:
                flat_texts.append(body)
            counts.append(n // 2)
            valid.append(True)
        else:
            counts.append(0)
            valid.append(False)
    values = np.fromstring(",".join(flat_texts), sep=",") if flat_texts else np.zeros(0)
    pairs = pa.ListArray.from_arrays(pa.array(np.arange(0, len(values) + 1, 2, dtype=np.int32)),
                                     pa.array(values, type=pa.float64()))
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int32)
    mask = pa.array([not v for v in valid], type=pa.bool_())
    return pa.ListArray.from_arrays(pa.array(offsets), pairs, mask=mask)


def manifest_table(rows: Iterable[ManifestRow]) -> Any:
    """A ``pyarrow.Table`` of manifest rows (columns and types as the module docstring says).

    Raises:
        ImportError: pyarrow is not installed (the message gives the install command).
    """
    pa = require_pyarrow()
    rows = list(rows)
    types = {"int": pa.int64(), "float": pa.float64(), "bool": pa.bool_(), "str": pa.string()}
    arrays, schema = [], []
    for col in COLUMNS:
        values = [getattr(r, col) for r in rows]
        kind = COLUMN_TYPES[col]
        if col in LIST_COLUMNS:
            arr = _points_array(pa, values)
        elif kind == "float":
            arr = pa.array([_csv_float(v) for v in values], type=pa.float64())
        elif kind == "str" and col not in ("source", "output", "status"):
            arr = pa.array([v if v != "" else None for v in values], type=pa.string())
        else:
            arr = pa.array(values, type=types[kind])
        arrays.append(arr)
        schema.append(pa.field(col, arr.type))
    return pa.Table.from_arrays(arrays, schema=pa.schema(schema))


def write_parquet(rows: Iterable[ManifestRow], path: str | os.PathLike) -> Path:
    """Write ``rows`` to ``path`` as Parquet, atomically (temporary file, fsync, rename); a file
    that already holds exactly this is left alone.

    Raises:
        ImportError: pyarrow is not installed.
        OSError: the file could not be written (the previous one, if any, is unchanged).
    """
    pa = require_pyarrow()
    buf = io.BytesIO()
    pa.parquet.write_table(manifest_table(rows), buf, compression="zstd")
    path = Path(path)
    data = buf.getvalue()
    try:
        if path.stat().st_size == len(data) and path.read_bytes() == data:
            return path  # unchanged: a rerun with nothing to do touches no file
    except OSError:
        pass
    atomic_write_bytes(path, data)
    return path
