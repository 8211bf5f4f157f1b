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
import json
import os
from pathlib import Path
from typing import Any, Iterable

from affectsynth.atomic import atomic_write_bytes
from affectsynth.manifest import COLUMN_TYPES, COLUMNS, ManifestRow

__all__ = ["PARQUET_NAME", "manifest_table", "write_parquet"]

PARQUET_NAME = "manifest.parquet"

#: Columns stored as lists in Parquet (JSON text in the CSV).
LIST_COLUMNS = ("landmarks",)


def _pyarrow() -> Any:
    try:
        import pyarrow
        import pyarrow.parquet  # noqa: F401
    except ImportError:
        raise ImportError("--manifest-format parquet needs pyarrow: pip install 'affectsynth[parquet]' "
                          "(or pip install pyarrow)") from None
    return pyarrow


def manifest_table(rows: Iterable[ManifestRow]) -> Any:
    """A ``pyarrow.Table`` of manifest rows (columns and types as the module docstring says).

    Raises:
        ImportError: pyarrow is not installed (the message gives the install command).
    """
    pa = _pyarrow()
    rows = [ManifestRow.from_csv_dict(r.to_csv_dict()) for r in rows]  # the values the CSV holds, exactly
    types = {"int": pa.int64(), "float": pa.float64(), "bool": pa.bool_(), "str": pa.string()}
    arrays, schema = [], []
    for col in COLUMNS:
        values = [getattr(r, col) for r in rows]
        if col in LIST_COLUMNS:
            typ = pa.list_(pa.list_(pa.float64()))
            values = [json.loads(v) if v else None for v in values]
        else:
            typ = types[COLUMN_TYPES[col]]
            if typ == pa.string():
                values = [None if v == "" and col not in ("source", "output", "status") else v for v in values]
        arrays.append(pa.array(values, type=typ))
        schema.append(pa.field(col, typ))
    return pa.Table.from_arrays(arrays, schema=pa.schema(schema))


def write_parquet(rows: Iterable[ManifestRow], path: str | os.PathLike) -> Path:
    """Write ``rows`` to ``path`` as Parquet, atomically (temporary file, fsync, rename).

    Raises:
        ImportError: pyarrow is not installed.
        OSError: the file could not be written (the previous one, if any, is unchanged).
    """
    pa = _pyarrow()
    buf = io.BytesIO()
    pa.parquet.write_table(manifest_table(rows), buf, compression="zstd")
    path = Path(path)
    atomic_write_bytes(path, buf.getvalue())
    return path
