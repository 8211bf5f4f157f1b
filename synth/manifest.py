"""The batch manifest: a CSV with one row per output, appended and fsync'd per image (its rows together).

Columns (:data:`COLUMNS`), in order:

``source, output, status, error, target_kind, expression, intensity, valence, arousal, seed,
face, n_faces, yaw, pitch, roll, weights, variant, aus, verify_score, verify_face, verify_aus``

* ``source``: input path relative to INPUT_DIR (POSIX); ``output``: output path relative to
  OUTPUT_DIR (planned path when the row is an error or a skip).
* ``status``: ``ok`` (written), ``error`` (failed; retried by a rerun) or ``skipped`` (nothing
  to synthesise, e.g. no face; not retried).
* ``error``: one line, ``<reason>: <detail>`` where ``<reason>`` is a short code such as
  ``unreadable``, ``no-face``, ``face-too-small``, ``extreme-pose``, ``poor-fit``, ``fit-failed``,
  ``synth-failed``.
* ``face``: face index (0 = largest); ``n_faces``: faces found in the source (empty if unknown).
* ``yaw, pitch, roll``: head pose of the synthesised face in degrees.
* ``weights``: JSON object ``{"blendshape": weight, ...}`` of the synthesised face's
  non-zero blendshape weights, rounded to 4 decimals (absent names are 0). One JSON column
  rather than 53 columns keeps the file readable and independent of the model's shape list.
* ``variant``: the expression variant shown (EMFACS prototype, e.g. ``open``), empty for VA and
  AU targets.
* ``aus``: the AU target's intensities as JSON ``{"AU12": 0.8, "AU6": 0.5}``, empty for other targets.
* ``verify_score, verify_face, verify_aus``: filled only when outputs are verified
  (``affectsynth.verify``): the score in [0, 1], whether a face was found again in the output
  (``True``/``False``), and JSON ``{"AU12_L": [target, recovered], ...}``.

Resume: :class:`Manifest` reads an existing file on open. An output is *done* if it has an
``ok`` row and its file exists and decodes, or a ``skipped`` row. ``ok`` rows whose file is
missing or unreadable are dropped (the file is rewritten atomically without them), and a
truncated last line left by a killed run is cut off, so appending resumes cleanly.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Iterable, Mapping

from affectsynth.atomic import atomic_write_bytes

__all__ = [
    "COLUMNS",
    "Manifest",
    "ManifestError",
    "ManifestRow",
    "is_readable_image",
]

STATUSES = ("ok", "error", "skipped")


class ManifestError(ValueError):
    """An existing manifest has another format than this version writes."""


def _fmt(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return "" if math.isnan(v) else f"{v:.6g}"
    return str(v)


@dataclass(frozen=True)
class ManifestRow:
    """One manifest row (see the module docstring for the meaning of each field)."""

    source: str
    output: str
    status: str
    error: str = ""
    target_kind: str = ""
    expression: str = ""
    intensity: float | None = None
    valence: float | None = None
    arousal: float | None = None
    seed: int | None = None
    face: int | None = None
    n_faces: int | None = None
    yaw: float | None = None
    pitch: float | None = None
    roll: float | None = None
    weights: str = ""
    variant: str = ""
    aus: str = ""
    verify_score: float | None = None
    verify_face: bool | None = None
    verify_aus: str = ""

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"ManifestRow: status must be one of {STATUSES}, got {self.status!r}")
        # one line, always
        object.__setattr__(self, "error", " ".join(str(self.error).split()))

    @property
    def reason(self) -> str:
        """The short reason code before the first ':' of ``error`` ("" for ok rows)."""
        return self.error.split(":", 1)[0].strip() if self.error else ""

    def to_csv_dict(self) -> dict[str, str]:
        """All fields as strings, keyed by column."""
        return {k: _fmt(v) for k, v in asdict(self).items()}

    @classmethod
    def from_csv_dict(cls, d: Mapping[str, str]) -> "ManifestRow":
        """Inverse of :meth:`to_csv_dict` (missing columns take defaults)."""
        kw: dict[str, Any] = {}
        for f in fields(cls):
            raw = d.get(f.name)
            if raw is None or raw == "":
                continue
            if f.name in ("seed", "face", "n_faces"):
                kw[f.name] = int(raw)
            elif f.name in ("intensity", "valence", "arousal", "yaw", "pitch", "roll", "verify_score"):
                kw[f.name] = float(raw)
            elif f.name == "verify_face":
                kw[f.name] = raw.strip().lower() in ("true", "1")
            else:
                kw[f.name] = raw
        kw.setdefault("source", "")
        kw.setdefault("output", "")
        kw.setdefault("status", "error")
        return cls(**kw)

    @staticmethod
    def weights_json(weights: Mapping[str, float] | None) -> str:
        """Compact JSON of the non-zero weights rounded to 4 decimals (see module docstring)."""
        if not weights:
            return ""
        out = {k: round(float(v), 4) for k, v in weights.items() if round(float(v), 4) != 0.0}
        return json.dumps(out, separators=(",", ":"))


COLUMNS: tuple[str, ...] = tuple(f.name for f in fields(ManifestRow))


_PNG_SIG = b"\x89PNG\r\n\x1a\n"
_PNG_IEND = b"\x00\x00\x00\x00IEND\xaeB`\x82"


def is_readable_image(path: str | os.PathLike, *, full: bool = False) -> bool:
    """True if ``path`` is a complete image file.

    PNGs get an O(1) check (signature at the start, the IEND chunk at the end: catches empty,
    zero-filled and truncated files, which is what a crash or power loss leaves); other formats,
    or ``full=True``, are verified by PIL (PNG chunk CRCs included).
    """
    p = Path(path)
    try:
        if not p.is_file():
            return False
        size = p.stat().st_size
        if size < len(_PNG_SIG) + len(_PNG_IEND):
            return False
        if not full and p.suffix.lower() == ".png":
            with open(p, "rb") as f:
                head = f.read(8)
                f.seek(-12, os.SEEK_END)
                tail = f.read(12)
            return head == _PNG_SIG and tail == _PNG_IEND
        from PIL import Image, UnidentifiedImageError

        try:
            with Image.open(p) as im:
                im.verify()
        except (UnidentifiedImageError, SyntaxError, ValueError):
            return False
        return True
    except OSError:
        return False


class Manifest:
    """Append-only CSV manifest with resume support.

    Args:
        path: the CSV file (created with a header if missing).
        columns: expected columns; an existing file must have exactly these.
        output_root: folder that ``output`` paths are relative to (default: the manifest's folder);
            used to check that ``ok`` outputs exist and decode.
        check_outputs: verify ``ok`` outputs on open (decode check); ``False`` only checks existence.
        readonly: never modify the file (no repair on open; :meth:`append` raises), e.g. for dry runs.

    Raises:
        ManifestError: the existing file has other columns.

    Example:
        >>> import tempfile, pathlib
        >>> d = pathlib.Path(tempfile.mkdtemp())
        >>> with Manifest(d / "manifest.csv") as m:
        ...     m.append(ManifestRow("a.jpg", "a_jpg/f0_x.png", "skipped", "no-face: none found"))
        >>> Manifest(d / "manifest.csv").is_done("a_jpg/f0_x.png")
        True
    """

    def __init__(self, path: str | os.PathLike, columns: Iterable[str] = COLUMNS, *,
                 output_root: str | os.PathLike | None = None, check_outputs: bool = True,
                 readonly: bool = False) -> None:
        self.path = Path(path)
        self.columns = tuple(columns)
        self.output_root = Path(output_root) if output_root is not None else self.path.parent
        self.check_outputs = check_outputs
        self.readonly = readonly
        self.rows: list[ManifestRow] = []
        self.dropped_rows = 0
        self._done: set[str] = set()
        self._by_source: dict[str, list[ManifestRow]] = {}
        self._file: io.TextIOWrapper | None = None
        self._load()

    # ----------------------------------------------------------------- reading
    def _load(self) -> None:
        if not self.path.exists():
            return
        data = self.path.read_bytes()
        truncated = bool(data) and not data.endswith(b"\n")
        if truncated:  # a killed writer left half a line: drop it
            data = data[: data.rfind(b"\n") + 1]
        text = data.decode("utf-8", errors="replace")
        reader = csv.reader(io.StringIO(text, newline=""))
        header = next(reader, None)
        if header is None:
            self._rewrite([])
            return
        if tuple(header) != self.columns:
            raise ManifestError(
                f"{self.path}: columns {','.join(header)} differ from this version's "
                f"{','.join(self.columns)}; use a new OUTPUT_DIR or move the old manifest away")
        rows: list[ManifestRow] = []
        bad = 0
        for rec in reader:
            if len(rec) != len(self.columns):
                bad += 1
                continue
            try:
                rows.append(ManifestRow.from_csv_dict(dict(zip(self.columns, rec))))
            except ValueError:
                bad += 1
        kept: list[ManifestRow] = []
        for r in rows:
            if r.status == "ok" and not self._output_ok(r.output):
                bad += 1
                continue
            kept.append(r)
        self.rows = kept
        for r in kept:
            self._by_source.setdefault(r.source, []).append(r)
        self.dropped_rows = bad
        self._done = {r.output for r in kept if r.status in ("ok", "skipped")}
        if truncated or bad:
            self._rewrite(kept)

    def _output_ok(self, rel: str) -> bool:
        if not rel:
            return False
        p = self.output_root / rel
        return is_readable_image(p) if self.check_outputs else p.is_file()

    def _rewrite(self, rows: list[ManifestRow]) -> None:
        if self.readonly:
            return
        buf = io.StringIO(newline="")
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(self.columns)
        for r in rows:
            d = r.to_csv_dict()
            w.writerow([d[c] for c in self.columns])
        atomic_write_bytes(self.path, buf.getvalue().encode("utf-8"))

    def is_done(self, output: str) -> bool:
        """True if ``output`` has a valid ``ok`` row or a ``skipped`` row."""
        return str(output) in self._done

    @property
    def done_outputs(self) -> frozenset[str]:
        """All done outputs (see :meth:`is_done`)."""
        return frozenset(self._done)

    def rows_for(self, source: str) -> list[ManifestRow]:
        """Rows recorded for one source (relative path)."""
        return list(self._by_source.get(source, ()))

    # ----------------------------------------------------------------- writing
    def open(self) -> "Manifest":
        """Open for appending (creates the file with its header if needed)."""
        if self.readonly:
            raise ValueError(f"{self.path}: manifest was opened read-only")
        if self._file is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            new = not self.path.exists() or self.path.stat().st_size == 0
            self._file = open(self.path, "a", encoding="utf-8", newline="")
            if new:
                csv.writer(self._file, lineterminator="\n").writerow(self.columns)
                self._sync()
        return self

    def _sync(self) -> None:
        f = self._file
        if f is None:
            raise ValueError(f"{self.path}: manifest is not open")
        f.flush()
        os.fsync(f.fileno())

    def append(self, row: ManifestRow) -> None:
        """Append one row, flush and fsync it (opens the file if needed)."""
        self.extend([row])

    def extend(self, rows: "list[ManifestRow]") -> None:
        """Append rows that arrive together (one image's outputs), then flush and fsync once."""
        if self._file is None:
            self.open()
        writer = csv.writer(self._file, lineterminator="\n")
        for row in rows:
            d = row.to_csv_dict()
            writer.writerow([d.get(c, "") for c in self.columns])
        self._sync()
        for row in rows:
            self.rows.append(row)
            self._by_source.setdefault(row.source, []).append(row)
            if row.status in ("ok", "skipped"):
                self._done.add(row.output)

    def close(self) -> None:
        """Close the file (rows are already on disk)."""
        if self._file is not None:
            self._file.close()
            self._file = None

    def __enter__(self) -> "Manifest":
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()
