"""The batch manifest: a CSV with one row per output, appended and fsync'd per image (its rows together).

Columns (:data:`COLUMNS`), in order:

``source, output, status, error, target_kind, expression, intensity, valence, arousal, seed,
face, n_faces, yaw, pitch, roll, weights, variant, aus, verify_score, verify_face, verify_aus,
face_x0, face_y0, face_x1, face_y1, crop_x0, crop_y0, crop_x1, crop_y1, out_width, out_height,
head_rotation_yaw, head_rotation_pitch, light_azimuth, light_strength, au_activations, landmarks,
settings_id, sequence, frame, time_s``

* ``source``: input path relative to INPUT_DIR (POSIX); ``output``: output path relative to
  OUTPUT_DIR (planned path when the row is an error or a skip).
* ``status``: ``ok`` (written), ``error`` (failed), ``skipped`` (nothing to synthesise, e.g.
  no face; not retried) or ``rejected`` (synthesised, but its verification score was under
  ``--min-verify``: no file, not retried; the reason says the score). Errors whose reason is in :data:`TRANSIENT_REASONS` (``write-failed``,
  ``worker-crashed``, ``worker-error``) are retried by a rerun; the others (``unreadable``,
  ``fit-failed``, ``synth-failed``) are permanent: recorded once, retried only on request
  (``retry_errors``, the ``--retry-errors`` flag).
* ``error``: one line, ``<reason>: <detail>`` where ``<reason>`` is a short code such as
  ``unreadable``, ``no-face``, ``face-too-small``, ``extreme-pose``, ``poor-fit``, ``fit-failed``,
  ``synth-failed``.
* ``face``: face index (0 = largest); ``n_faces``: faces found in the source (empty if unknown):
  with ``--faces all`` the faces fitted, with ``--faces largest`` the faces the detector found
  (`FaceFit.faces_found`: boxes before the landmark network confirms them, so it can be one more).
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
* ``face_x0, face_y0, face_x1, face_y1``: the fitted face's box in the SOURCE photo's pixels
  (continuous coordinates, top-left corner 0, 0); ``crop_x0 .. crop_y1``: the ``--size`` crop
  window in source pixels (a square, resized to ``out_width`` x ``out_height``; it may reach
  outside the photo, which is black there), empty without ``--size``. Four numeric columns each
  rather than one ``"x0,y0,x1,y1"`` text: ``pd.read_csv`` types them as numbers directly
  (``df.face_x1 - df.face_x0`` works with no parsing), and Parquet stores them as numbers.
* ``out_width, out_height``: the written image's size in pixels.
* ``head_rotation_yaw, head_rotation_pitch``: the extra head rotation drawn for this output
  (degrees, 0 when ``--head-rotation`` is off; the resulting pose is in ``yaw, pitch, roll``);
  ``light_azimuth, light_strength``: the relighting applied (degrees from the camera axis, and
  strength in [0, 1]), empty when the output was not relit. The run's maxima are in ``run.json``.
* ``au_activations``: JSON ``{"AU12_L": 0.8, ...}``: the FACS Action Units the output's final
  blendshape weights imply (`affectsynth.verify.au_activations`, the one weights -> AU projection
  used by verification too), 3 decimals, absent AUs are 0.
* ``landmarks``: JSON ``[[x, y], ...]``, the 468 MediaPipe-layout points of the output face in the
  WRITTEN image's pixels (after the crop and any head rotation), 0.01 px.
* ``settings_id``: which recorded settings made this row (a key of ``run.json``'s ``runs``, see
  `affectsynth.run_record`); empty in rows of versions that recorded none.
* ``sequence, frame, time_s``: filled only for frames of an affect sequence (``--paths``): the
  sequence's name, the frame's index (from 0) and its time in seconds; empty for single outputs.
  All frames of a sequence share its ``seed`` (``affectsynth animate --seed`` renders them again).

Resume: :class:`Manifest` reads an existing file on open (one of an earlier version, whose columns
are a prefix of these, is rewritten with the new columns empty). An output is *done* if it has an
``ok`` row and its file exists and decodes, or a ``skipped`` row; it is *settled* if done or
holding a permanent error. Each output keeps one row: on open, rows to be retried (transient
errors; every error with ``retry_errors``), ``ok`` rows whose file is missing or unreadable,
duplicates of a settled row, undecodable lines and lines with an oversized field are dropped, a
byte-order mark and a truncated last line left by a killed run are cut off; the file is then
rewritten atomically, so appending resumes cleanly. Whether a done output was made with this
run's settings is `affectsynth.run_record`'s question (``settings_id``, ``run.json``); a Parquet
copy of the rows is `affectsynth.manifest_parquet`'s.

Writing: each batch of rows is one ``write`` of whole lines to a file opened ``O_APPEND``
(``O_NOFOLLOW``: a ``manifest.csv`` that is a symlink is refused), then fsync'd; if the write
fails part-way (a full disk), the file is truncated back to its last complete line before the
error propagates. Fields never hold control characters: paths come in their
``affectsynth.naming.display_path`` form, the error text is one line with control characters
and undecodable bytes escaped.
"""

from __future__ import annotations

import contextlib
import csv
import errno
import io
import json
import math
import os
import re
import stat
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

from affectsynth.atomic import atomic_write_bytes
from affectsynth.output_images import is_complete_image

__all__ = [
    "COLUMNS",
    "COLUMN_TYPES",
    "DONE_STATUSES",
    "TRANSIENT_REASONS",
    "Manifest",
    "ManifestError",
    "ManifestRow",
    "format_field",
    "is_readable_image",
]

STATUSES = ("ok", "error", "skipped", "rejected")

#: Statuses whose output needs no more work: written, nothing to synthesise, or synthesised and
#: refused by the verification threshold (``--min-verify``).
DONE_STATUSES = ("ok", "skipped", "rejected")

#: Error reasons a rerun retries (the others are permanent; see the module docstring).
TRANSIENT_REASONS = frozenset({"write-failed", "worker-crashed", "worker-error"})

#: Longest field a manifest row may hold (characters); longer ones mark a corrupt line.
MAX_FIELD_CHARS = 1 << 20

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")
_BOM = b"\xef\xbb\xbf"


def _escape_controls(text: str) -> str:
    def esc(m: re.Match) -> str:
        o = ord(m.group(0))
        if 0xDC80 <= o <= 0xDCFF:  # an undecodable byte (surrogateescape)
            return f"\\x{o - 0xDC00:02x}"
        return f"\\x{o:02x}" if o < 0x100 else f"\\u{o:04x}"

    return _CONTROL.sub(esc, text)


class ManifestError(ValueError):
    """An existing manifest has another format than this version writes."""


def format_field(v: Any) -> str:
    """A field's CSV text: "" for None and NaN, floats at 6 significant digits, else ``str``."""
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
    face_x0: float | None = None
    face_y0: float | None = None
    face_x1: float | None = None
    face_y1: float | None = None
    crop_x0: int | None = None
    crop_y0: int | None = None
    crop_x1: int | None = None
    crop_y1: int | None = None
    out_width: int | None = None
    out_height: int | None = None
    head_rotation_yaw: float | None = None
    head_rotation_pitch: float | None = None
    light_azimuth: float | None = None
    light_strength: float | None = None
    au_activations: str = ""
    landmarks: str = ""
    settings_id: str = ""
    sequence: str = ""
    frame: int | None = None
    time_s: float | None = None

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"ManifestRow: status must be one of {STATUSES}, got {self.status!r}")
        for name in ("source", "output"):
            if _CONTROL.search(getattr(self, name)):
                raise ValueError(f"ManifestRow: {name} must be printable (pass it through "
                                 f"affectsynth.naming.display_path), got {getattr(self, name)!r}")
        # one line, always; no control characters or undecodable bytes
        object.__setattr__(self, "error", _escape_controls(" ".join(str(self.error).split())))

    @property
    def reason(self) -> str:
        """The short reason code before the first ':' of ``error`` ("" for ok rows)."""
        return self.error.split(":", 1)[0].strip() if self.error else ""

    @property
    def transient(self) -> bool:
        """True for an error a rerun retries (its reason is in :data:`TRANSIENT_REASONS`)."""
        return self.status == "error" and self.reason in TRANSIENT_REASONS

    def to_csv_dict(self) -> dict[str, str]:
        """All fields as strings, keyed by column (the fields are plain values: no `asdict` deep copy)."""
        return {k: format_field(getattr(self, k)) for k in COLUMNS}

    @classmethod
    def from_csv_dict(cls, d: Mapping[str, str]) -> "ManifestRow":
        """Inverse of :meth:`to_csv_dict` (missing columns take defaults)."""
        kw: dict[str, Any] = {}
        for f in fields(cls):
            raw = d.get(f.name)
            if raw is None or raw == "":
                continue
            kind = COLUMN_TYPES.get(f.name, "str")
            if kind == "int":
                kw[f.name] = int(raw)
            elif kind == "float":
                kw[f.name] = float(raw)
            elif kind == "bool":
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
        out = {k: r for k, v in weights.items() if (r := round(float(v), 4)) != 0.0}
        return json.dumps(out, separators=(",", ":"))


COLUMNS: tuple[str, ...] = tuple(f.name for f in fields(ManifestRow))

#: Column -> "int", "float", "bool" or "str": how a CSV field is parsed and the Parquet column's type.
COLUMN_TYPES: Mapping[str, str] = {
    f.name: next((k for k in ("int", "float", "bool") if str(f.type).startswith(k)), "str")
    for f in fields(ManifestRow)}


#: The O(1) completeness check of output files (PNG and WebP containers; other formats decoded):
#: `affectsynth.output_images.is_complete_image`, under the name this module has always exported.
is_readable_image = is_complete_image


class Manifest:
    """Append-only CSV manifest with resume support.

    Args:
        path: the CSV file (created with a header if missing).
        columns: expected columns; an existing file must have exactly these.
        output_root: folder that ``output`` paths are relative to (default: the manifest's folder);
            used to check that ``ok`` outputs exist and decode.
        check_outputs: verify ``ok`` outputs on open (decode check); ``False`` only checks existence.
        readonly: never modify the file (no repair on open; :meth:`append` raises), e.g. for dry runs.
        retry_errors: treat permanent errors as not settled either (they are dropped on open
            and redone, like transient ones).

    Raises:
        ManifestError: the existing file has other columns, or is a symlink or not a regular file.

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
                 readonly: bool = False, retry_errors: bool = False) -> None:
        self.path = Path(path)
        self.columns = tuple(columns)
        self.output_root = Path(output_root) if output_root is not None else self.path.parent
        self.check_outputs = check_outputs
        self.readonly = readonly
        self.retry_errors = retry_errors
        self.rows: list[ManifestRow] = []
        self.dropped_rows = 0
        self.retried_rows = 0
        self._done: set[str] = set()
        self._settled: set[str] = set()
        self._by_source: dict[str, list[ManifestRow]] = {}
        self._fd: int | None = None
        self._load()

    # ----------------------------------------------------------------- reading
    def _check_regular(self) -> bool:
        """Whether the file exists; refuses a symlink or anything but a regular file."""
        try:
            st = os.lstat(self.path)
        except FileNotFoundError:
            return False
        if stat.S_ISLNK(st.st_mode):
            raise ManifestError(f"{self.path}: is a symlink (to {os.readlink(self.path)}); refusing to write "
                                "through it: replace it with a regular file or use another OUTPUT_DIR")
        if not stat.S_ISREG(st.st_mode):
            raise ManifestError(f"{self.path}: exists and is not a regular file")
        return True

    def _parse(self, text: str) -> tuple[list[str] | None, list[list[str]], int]:
        """Header, records and the number of unparseable lines of ``text``."""
        old_limit = csv.field_size_limit()
        csv.field_size_limit(max(old_limit, len(text) + 1))  # an oversized field is a bad row, not a crash
        try:
            reader = csv.reader(io.StringIO(text, newline=""))
            header = next(reader, None)
            while header is not None and not any(header):  # blank lines before the header
                header = next(reader, None)
            records, bad = [], 0
            for rec in reader:
                if not rec:
                    continue
                if len(rec) != len(header) or any(len(v) > MAX_FIELD_CHARS for v in rec):
                    bad += 1
                    continue
                records.append(rec)
        except csv.Error as e:
            raise ManifestError(f"{self.path}: unreadable CSV ({e}); move it away to start a new manifest "
                                "(outputs already written are kept and re-verified)") from None
        finally:
            csv.field_size_limit(old_limit)
        return header, records, bad

    def _load(self) -> None:
        if not self._check_regular():
            return
        data = self.path.read_bytes()
        repair = False
        if data.startswith(_BOM):  # written by a spreadsheet: the header would not match
            data, repair = data[len(_BOM):], True
        if data and not data.endswith(b"\n"):  # a killed writer left half a line: drop it
            data, repair = data[: data.rfind(b"\n") + 1], True
        header, records, bad = self._parse(data.decode("utf-8", errors="replace"))
        if header is None:  # empty, or blank lines only
            if data:
                self._rewrite([])
            return
        older = len(header) < len(self.columns) and tuple(header) == self.columns[:len(header)]
        if older:  # written by an earlier version: the new columns (at the end) start empty
            repair = True
        elif tuple(header) != self.columns:
            raise ManifestError(
                f"{self.path}: columns {','.join(header)[:200]} differ from this version's "
                f"{','.join(self.columns)}; use a new OUTPUT_DIR or move the old manifest away")
        rows: list[ManifestRow] = []
        for rec in records:
            try:
                rows.append(ManifestRow.from_csv_dict(dict(zip(header, rec))))
            except ValueError:
                bad += 1
        kept, dropped, retried = self._select(rows)
        self.rows = kept
        for r in kept:
            self._by_source.setdefault(r.source, []).append(r)
        self.dropped_rows = bad + dropped
        self.retried_rows = retried
        self._done = {r.output for r in kept if r.status in DONE_STATUSES}
        self._settled = {r.output for r in kept}
        if repair or bad or dropped or retried:
            self._rewrite(kept)

    def _select(self, rows: list[ManifestRow]) -> tuple[list[ManifestRow], int, int]:
        """One row per output: the last ``ok``/``skipped`` row, else the last error to keep.

        Returns:
            (rows kept in file order, rows dropped as invalid or duplicate, error rows to retry).
        """
        best: dict[str, int] = {}
        dropped = retried = 0
        for i, r in enumerate(rows):
            if r.status == "ok" and not self._output_ok(r.output):
                dropped += 1
                continue
            if r.status == "error" and (self.retry_errors or r.transient):
                retried += 1
                continue
            j = best.get(r.output)
            if j is not None:
                dropped += 1
                if rows[j].status != "error" and r.status == "error":
                    continue  # an error after a settled row changes nothing
            best[r.output] = i
        keep = sorted(best.values())
        return [rows[i] for i in keep], dropped, retried

    def _output_ok(self, rel: str) -> bool:
        if not rel:
            return False
        p = self.output_root / rel
        return is_readable_image(p) if self.check_outputs else p.is_file()

    def _lines(self, rows: Iterable[ManifestRow], *, header: bool = False) -> bytes:
        buf = io.StringIO(newline="")
        w = csv.writer(buf, lineterminator="\n")
        if header:
            w.writerow(self.columns)
        for r in rows:
            d = r.to_csv_dict()
            w.writerow([d.get(c, "") for c in self.columns])
        return buf.getvalue().encode("utf-8")

    def _rewrite(self, rows: list[ManifestRow]) -> None:
        if self.readonly:
            return
        atomic_write_bytes(self.path, self._lines(rows, header=True))

    def drop(self, outputs: Iterable[str]) -> int:
        """Forget the rows of ``outputs`` (they are redone) and rewrite the file atomically.

        Returns:
            The number of rows dropped.
        """
        if self._fd is not None:
            raise ValueError(f"{self.path}: drop() needs the manifest closed")
        gone = set(outputs)
        kept = [r for r in self.rows if r.output not in gone]
        n = len(self.rows) - len(kept)
        if n:
            self.rows = kept
            self._by_source = {}
            for r in kept:
                self._by_source.setdefault(r.source, []).append(r)
            self._done -= gone
            self._settled -= gone
            self._rewrite(kept)
        return n

    def update(self, change: Callable[[ManifestRow], ManifestRow]) -> None:
        """Replace every row by ``change(row)`` (same outputs, e.g. a field filled in) and rewrite
        the file atomically (in memory only when read-only)."""
        if self._fd is not None:
            raise ValueError(f"{self.path}: update() needs the manifest closed")
        new = [change(r) for r in self.rows]
        if [r.output for r in new] != [r.output for r in self.rows]:
            raise ValueError(f"{self.path}: update() must keep every row's output")
        self.rows = new
        self._by_source = {}
        for r in new:
            self._by_source.setdefault(r.source, []).append(r)
        self._rewrite(new)

    def is_done(self, output: str) -> bool:
        """True if ``output`` has a valid ``ok`` row or a ``skipped`` row."""
        return str(output) in self._done

    @property
    def done_outputs(self) -> frozenset[str]:
        """All done outputs (see :meth:`is_done`)."""
        return frozenset(self._done)

    @property
    def settled_outputs(self) -> frozenset[str]:
        """Outputs a rerun leaves alone: done, or holding a permanent error (unless ``retry_errors``)."""
        return frozenset(self._settled)

    def rows_for(self, source: str) -> list[ManifestRow]:
        """Rows recorded for one source (relative path)."""
        return list(self._by_source.get(source, ()))

    # ----------------------------------------------------------------- writing
    def open(self) -> "Manifest":
        """Open for appending (creates the file with its header if needed).

        Raises:
            ManifestError: the path is (now) a symlink or not a regular file.
        """
        if self.readonly:
            raise ValueError(f"{self.path}: manifest was opened read-only")
        if self._fd is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._check_regular()
            flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
            try:
                self._fd = os.open(self.path, flags, 0o644)
            except OSError as e:
                if e.errno == errno.ELOOP:
                    raise ManifestError(f"{self.path}: is a symlink; refusing to write through it") from None
                raise
            if os.fstat(self._fd).st_size == 0:
                self._write(self._lines((), header=True))
        return self

    def _write(self, data: bytes) -> None:
        """Append ``data`` (whole lines) and fsync; on failure cut the file back to where it was."""
        fd = self._fd
        if fd is None:
            raise ValueError(f"{self.path}: manifest is not open")
        start = os.fstat(fd).st_size
        written = False
        try:
            view = memoryview(data)
            while view:
                n = os.write(fd, view)
                view = view[n:]
            os.fsync(fd)
            written = True
        finally:
            if not written:  # a write error or an interrupt part-way: leave whole lines only
                with contextlib.suppress(OSError):
                    os.ftruncate(fd, start)
                    os.fsync(fd)

    def append(self, row: ManifestRow) -> None:
        """Append one row, flush and fsync it (opens the file if needed)."""
        self.extend([row])

    def extend(self, rows: "list[ManifestRow]") -> None:
        """Append rows that arrive together (one image's outputs) in one write, then fsync once.

        Raises:
            OSError: the write failed (e.g. ``ENOSPC``); the file then ends at its last complete line
                (as it does after an interrupt part-way through the write).
        """
        if self._fd is None:
            self.open()
        if rows:
            self._write(self._lines(rows))
        for row in rows:
            self.rows.append(row)
            self._by_source.setdefault(row.source, []).append(row)
            self._settled.add(row.output)
            if row.status in DONE_STATUSES:
                self._done.add(row.output)

    def close(self) -> None:
        """Close the file (rows are already on disk)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> "Manifest":
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()
