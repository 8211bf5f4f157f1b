"""The ``generate --paths FILE`` file: named affect sequences, each rendered per source image.

A sequence is either a valence-arousal path (Catmull-Rom through key points, as
`affectsynth.blendshapes.targets.AffectPath`; ``closed`` loops it) or categories in turn (each
rises from neutral to its apex and returns), with a number of frames. Its frames are planned
by `affectsynth.animate` (`plan_path_frames`, `plan_category_frames`), the planner of
``affectsynth animate``, so a sequence of the batch and an animation of the same path agree.

JSON: a list of objects, one per sequence::

    [{"name": "circle", "va": [[0.8, 0], [0, 0.8], [-0.8, 0], [0, -0.8]], "closed": true, "frames": 24},
     {"name": "loop", "va": "circle", "frames": 48},
     {"name": "smile", "expressions": ["neutral", "happiness", "neutral"], "frames": 16, "intensity": 0.8}]

Keys: ``name`` (letters, digits, ``_``, ``-``; 1-64 characters, unique ignoring case: it names
the output folder), ``frames`` (int, 2..10000), and exactly one of ``va`` (two or more
``[valence, arousal]`` keys in [-1, 1], or ``"circle"``: once round the VA circle, closed) or
``expressions`` (categories or aliases, a list or a comma-separated string). Optional:
``closed`` (VA paths: loop back to the first key, default false), ``fps`` (frame times, default
12), ``intensity`` (apex of each category, in [0, 1], default 1), ``sway`` (``[yaw, pitch]``
head sway amplitude in degrees, within 15, 10; default none).

CSV: one row per key point, a header naming the columns; ``name`` and either ``valence`` and
``arousal`` or ``expression`` on every row, the optional columns ``frames, closed, fps,
intensity, sway_yaw, sway_pitch`` on any row of the sequence (blank elsewhere, or the same
value); a sequence's rows are consecutive and ``frames`` appears at least once::

    name,valence,arousal,expression,frames,closed
    circle,0.8,0,,24,true
    circle,0,0.8,,,
    circle,-0.8,0,,,
    circle,0,-0.8,,,
    smile,,,neutral,16,
    smile,,,happiness,,
    smile,,,neutral,,

Every problem raises `PathsFileError` naming the file, where (JSON line/column, CSV line, the
sequence) and what is wrong.
"""

from __future__ import annotations

import csv
import functools
import io
import json
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

from affectsynth.gates import MAX_HEAD_ROTATION_DEG

if TYPE_CHECKING:  # pragma: no cover
    from affectsynth.animate import FrameTarget
    from affectsynth.blendshapes.targets import AffectPath

__all__ = ["MAX_FRAMES", "PathsFileError", "SequenceSpec", "load_paths_file", "parse_paths_csv", "parse_paths_json"]

#: Most frames of one sequence (frame files are numbered with 4 digits).
MAX_FRAMES = 10000

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
_JSON_KEYS = ("name", "frames", "va", "expressions", "closed", "fps", "intensity", "sway")
_CSV_COLUMNS = ("name", "valence", "arousal", "expression", "frames", "closed", "fps", "intensity",
                "sway_yaw", "sway_pitch")
_CSV_OPTIONS = ("frames", "closed", "fps", "intensity", "sway_yaw", "sway_pitch")


class PathsFileError(ValueError):
    """A ``--paths`` file (or one sequence of it) is malformed; the message says where and why."""


def _number(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{what} must be a finite number, got {value!r}")
    return float(value)


@dataclass(frozen=True)
class SequenceSpec:
    """One named affect sequence of a ``--paths`` file (plain data; picklable, hashable).

    Args:
        name: names the outputs (`affectsynth.naming.frame_relpath`) and keys the sequence's
            seed; letters, digits, ``_`` and ``-``, 1-64 characters.
        frames: number of frames, 2..`MAX_FRAMES`.
        va: (valence, arousal) key points in [-1, 1] of a VA path (two or more); empty for a
            category sequence.
        expressions: canonical category names in turn (one or more); empty for a VA path.
        closed: a VA path loops back to its first key (the spline is periodic; frame
            ``frames`` would be frame 0 again).
        fps: frames per second (each frame's ``time_s`` is ``index / fps``).
        intensity: apex intensity of each category, in [0, 1].
        sway_deg: (yaw, pitch) head sway amplitude in degrees (`affectsynth.animate.sway_angles`),
            within `affectsynth.gates.MAX_HEAD_ROTATION_DEG`.

    Raises:
        ValueError: any field out of range (the message names the sequence).
    """

    name: str
    frames: int
    va: tuple[tuple[float, float], ...] = ()
    expressions: tuple[str, ...] = ()
    closed: bool = False
    fps: float = 12.0
    intensity: float = 1.0
    sway_deg: tuple[float, float] = (0.0, 0.0)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _NAME.match(self.name):
            raise ValueError(f"path name {self.name!r}: expected 1-64 letters, digits, '_' or '-' (starting with a "
                             "letter or digit); it names the output folder")
        where = f"path {self.name!r}"
        if isinstance(self.frames, bool) or not isinstance(self.frames, int) or not 2 <= self.frames <= MAX_FRAMES:
            raise ValueError(f"{where}: frames must be an int in 2..{MAX_FRAMES}, got {self.frames!r}")
        va = tuple(tuple(p) for p in self.va)
        exprs = tuple(c.strip() for c in self.expressions.split(",")) if isinstance(self.expressions, str) \
            else tuple(self.expressions)
        if bool(va) == bool(exprs):
            raise ValueError(f"{where}: give exactly one of 'va' (key points) or 'expressions' (categories), "
                             f"got {'both' if va else 'neither'}")
        keys = []
        for i, p in enumerate(va):
            if len(p) != 2:
                raise ValueError(f"{where}: va key {i} must be [valence, arousal], got {list(p)!r}")
            v, a = (_number(x, f"{where}: va key {i}") for x in p)
            for label, x in (("valence", v), ("arousal", a)):
                if not -1.0 <= x <= 1.0:
                    raise ValueError(f"{where}: va key {i}: {label} {x:g} is outside [-1, 1]")
            keys.append((v, a))
        if va and len(keys) < 2:
            raise ValueError(f"{where}: a VA path needs at least 2 key points, got {len(keys)}")
        from affectsynth.labels import canonical_category

        cats = []
        for c in exprs:
            try:
                cats.append(canonical_category(c))
            except (ValueError, TypeError) as e:
                raise ValueError(f"{where}: {e}") from None
        if not isinstance(self.closed, bool):
            raise ValueError(f"{where}: closed must be true or false, got {self.closed!r}")
        if self.closed and not va:
            raise ValueError(f"{where}: closed applies to VA paths; a category sequence starts and ends neutral")
        fps = _number(self.fps, f"{where}: fps")
        if not 0 < fps <= 1000:
            raise ValueError(f"{where}: fps must be in (0, 1000], got {fps:g}")
        intensity = _number(self.intensity, f"{where}: intensity")
        if not 0.0 <= intensity <= 1.0:
            raise ValueError(f"{where}: intensity must be in [0, 1], got {intensity:g}")
        if intensity != 1.0 and not cats:
            raise ValueError(f"{where}: intensity applies to category sequences ('expressions'); a VA path's "
                             "key points say how strong each frame is")
        sway = tuple(_number(x, f"{where}: sway") for x in self.sway_deg)
        lim = MAX_HEAD_ROTATION_DEG
        if len(sway) != 2 or not (0 <= sway[0] <= lim[0] and 0 <= sway[1] <= lim[1]):
            raise ValueError(f"{where}: sway must be [yaw, pitch] within {lim[0]:g}, {lim[1]:g} degrees (what one "
                             f"photo supports), got {list(sway)}")
        object.__setattr__(self, "va", tuple(keys))
        object.__setattr__(self, "expressions", tuple(cats))
        object.__setattr__(self, "fps", fps)
        object.__setattr__(self, "intensity", intensity)
        object.__setattr__(self, "sway_deg", sway)

    @property
    def kind(self) -> str:
        """"va" for a VA path, "expressions" for categories in turn."""
        return "va" if self.va else "expressions"

    def affect_path(self) -> "AffectPath":
        """The `AffectPath` of a VA sequence (the first key repeated at the end when ``closed``).

        Raises:
            ValueError: a category sequence (it has no VA path).
        """
        from affectsynth.blendshapes.targets import VA, AffectPath

        if not self.va:
            raise ValueError(f"path {self.name!r}: a category sequence has no VA path")
        keys = list(self.va)
        if self.closed and keys[-1] != keys[0]:
            keys.append(keys[0])
        return AffectPath(tuple(VA(v, a) for v, a in keys))

    def plan(self) -> "list[FrameTarget]":
        """The sequence's frames, planned as ``affectsynth animate`` plans them (cached per spec)."""
        return list(_plan(self))

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict in the file's JSON form (`from_dict` reads it back)."""
        d: dict[str, Any] = {"name": self.name, "frames": self.frames}
        if self.va:
            d["va"] = [list(p) for p in self.va]
            d["closed"] = self.closed
        else:
            d["expressions"] = list(self.expressions)
            d["intensity"] = self.intensity
        d["fps"] = self.fps
        if self.sway_deg != (0.0, 0.0):
            d["sway"] = list(self.sway_deg)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "SequenceSpec":
        """One sequence from its JSON object (see the module docstring).

        Raises:
            ValueError: unknown keys, a missing name or frames, bad values.
        """
        if not isinstance(d, Mapping):
            raise ValueError(f"expected an object like {{\"name\": ..., \"va\": ..., \"frames\": ...}}, "
                             f"got {type(d).__name__}")
        name = d.get("name")
        where = f"path {name!r}" if name is not None else "path"
        unknown = [k for k in d if k not in _JSON_KEYS]
        if unknown:
            raise ValueError(f"{where}: unknown key(s) {', '.join(map(repr, unknown))}; expected {', '.join(_JSON_KEYS)}")
        if name is None:
            raise ValueError("path: missing 'name'")
        if "frames" not in d:
            raise ValueError(f"{where}: missing 'frames' (an int >= 2)")
        va = d.get("va", ())
        closed = d.get("closed", False)
        if isinstance(va, str):
            if va.strip().lower() != "circle":
                raise ValueError(f"{where}: va must be a list of [valence, arousal] keys or \"circle\", got {va!r}")
            if d.get("closed", True) is not True:
                raise ValueError(f"{where}: \"va\": \"circle\" is a closed loop; drop \"closed\": false")
            from affectsynth.animate import circle_path

            va, closed = [(p.valence, p.arousal) for p in circle_path().points], True
        elif not isinstance(va, (list, tuple)) or not all(isinstance(p, (list, tuple)) for p in va):
            raise ValueError(f"{where}: va must be a list of [valence, arousal] keys or \"circle\", got {va!r}")
        exprs = d.get("expressions", ())
        if isinstance(exprs, str):
            exprs = [c.strip() for c in exprs.split(",")]
        elif not isinstance(exprs, (list, tuple)):
            raise ValueError(f"{where}: expressions must be a list of categories, got {exprs!r}")
        sway = d.get("sway", (0.0, 0.0))
        if not isinstance(sway, (list, tuple)):
            raise ValueError(f"{where}: sway must be [yaw, pitch] in degrees, got {sway!r}")
        return cls(name, d["frames"], tuple(tuple(p) for p in va), tuple(exprs), closed,
                   d.get("fps", 12.0), d.get("intensity", 1.0), tuple(sway))


@functools.lru_cache(maxsize=256)
def _plan(spec: SequenceSpec) -> tuple:
    from affectsynth.animate import plan_category_frames, plan_path_frames

    if spec.va:
        return tuple(plan_path_frames(spec.affect_path(), spec.frames, fps=spec.fps, sway_deg=spec.sway_deg))
    return tuple(plan_category_frames(spec.expressions, spec.frames, fps=spec.fps, intensity=spec.intensity,
                                      sway_deg=spec.sway_deg))


def _check_unique(specs: list[SequenceSpec], where: list[str], file: str) -> None:
    seen: dict[str, int] = {}
    for i, s in enumerate(specs):
        key = s.name.lower()
        if key in seen:
            first = specs[seen[key]].name
            same = "" if first == s.name else f" ({first!r} differs only in case: one output folder on many disks)"
            raise PathsFileError(f"{file}: {where[i]}: duplicate path name {s.name!r}, first at "
                                 f"{where[seen[key]]}{same}; give each path its own name")
        seen[key] = i


def parse_paths_json(text: str, *, file: str = "<paths>") -> tuple[SequenceSpec, ...]:
    """Sequences of a JSON ``--paths`` file (see the module docstring).

    Args:
        text: the file's text.
        file: the file's name, for messages.

    Raises:
        PathsFileError: invalid JSON (line and column), not a list of objects, a bad sequence
            (its index and name), duplicate names.
    """
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise PathsFileError(f"{file}: line {e.lineno}, column {e.colno}: invalid JSON ({e.msg})") from None
    if not isinstance(data, list) or not data:
        raise PathsFileError(f"{file}: expected a non-empty JSON list of paths like "
                             '[{"name": "smile", "expressions": ["neutral", "happiness"], "frames": 16}], '
                             f"got {'an empty list' if data == [] else type(data).__name__}")
    specs, where = [], []
    for i, d in enumerate(data):
        w = f"path #{i + 1}"
        try:
            specs.append(SequenceSpec.from_dict(d))
        except ValueError as e:
            raise PathsFileError(f"{file}: {w}: {e}") from None
        where.append(f"{w} ({specs[-1].name!r})")
    _check_unique(specs, where, file)
    return tuple(specs)


def _csv_value(raw: str, column: str, where: str) -> Any:
    text = raw.strip()
    if column == "frames":
        try:
            return int(text)
        except ValueError:
            raise ValueError(f"{where}: frames must be an int, got {raw!r}") from None
    if column == "closed":
        low = text.lower()
        if low in ("true", "1", "yes"):
            return True
        if low in ("false", "0", "no"):
            return False
        raise ValueError(f"{where}: closed must be true or false, got {raw!r}")
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"{where}: {column} must be a number, got {raw!r}") from None


def parse_paths_csv(text: str, *, file: str = "<paths>") -> tuple[SequenceSpec, ...]:
    """Sequences of a CSV ``--paths`` file: one row per key point (see the module docstring).

    Args:
        text: the file's text.
        file: the file's name, for messages.

    Raises:
        PathsFileError: no header or an unknown column, a row with a bad value (its line), a
            sequence whose rows are not consecutive (a duplicate name) or whose options disagree.
    """
    reader = csv.reader(io.StringIO(text.lstrip("\ufeff"), newline=""))
    try:
        records = [(reader.line_num, rec) for rec in reader]
    except csv.Error as e:
        raise PathsFileError(f"{file}: line {reader.line_num}: unreadable CSV ({e})") from None
    records = [(n, rec) for n, rec in records if any(c.strip() for c in rec)]
    if not records:
        raise PathsFileError(f"{file}: empty; expected a header such as name,valence,arousal,frames")
    hline, header = records[0]
    header = [h.strip().lower() for h in header]
    unknown = [h for h in header if h not in _CSV_COLUMNS]
    if unknown:
        raise PathsFileError(f"{file}: line {hline}: unknown column(s) {', '.join(map(repr, unknown))}; expected "
                             f"name, valence and arousal or expression, and optionally {', '.join(_CSV_OPTIONS)}")
    if "name" not in header or not ({"valence", "arousal"} <= set(header) or "expression" in header):
        raise PathsFileError(f"{file}: line {hline}: the header needs 'name' and 'valence,arousal' or 'expression', "
                             f"got {','.join(header)}")
    if len(set(header)) != len(header):
        raise PathsFileError(f"{file}: line {hline}: a column appears twice in the header {','.join(header)}")
    groups: list[dict[str, Any]] = []
    finished: dict[str, int] = {}
    for line, rec in records[1:]:
        if len(rec) != len(header):
            raise PathsFileError(f"{file}: line {line}: {len(rec)} fields, the header has {len(header)}")
        row = dict(zip(header, rec))
        name = row["name"].strip()
        w = f"line {line}: path {name!r}"
        if not name:
            raise PathsFileError(f"{file}: line {line}: empty name")
        if not groups or groups[-1]["name"] != name:
            if name in finished:
                raise PathsFileError(f"{file}: line {line}: path {name!r} appears again after other paths (first on "
                                     f"line {finished[name]}): a path's rows must be consecutive, or the name is "
                                     "a duplicate; give each path its own name")
            finished[name] = line
            groups.append({"name": name, "line": line, "va": [], "expressions": [], "options": {}})
        g = groups[-1]
        v, a, e = (row.get(k, "").strip() for k in ("valence", "arousal", "expression"))
        try:
            if e and (v or a):
                raise ValueError(f"{w}: give valence,arousal or expression on a row, not both")
            if e:
                from affectsynth.labels import canonical_category

                try:
                    g["expressions"].append(canonical_category(e))
                except ValueError as err:
                    raise ValueError(f"{w}: {err}") from None
            elif v and a:
                key = (_csv_value(v, "valence", w), _csv_value(a, "arousal", w))
                for label, x in zip(("valence", "arousal"), key):
                    if not (math.isfinite(x) and -1.0 <= x <= 1.0):
                        raise ValueError(f"{w}: {label} {x:g} is outside [-1, 1]")
                g["va"].append(key)
            else:
                raise ValueError(f"{w}: expected valence and arousal, or an expression")
            if g["va"] and g["expressions"]:
                raise ValueError(f"{w}: a path is VA key points or categories, not both")
            for col in _CSV_OPTIONS:
                raw = row.get(col, "").strip()
                if not raw:
                    continue
                val = _csv_value(raw, col, w)
                old = g["options"].setdefault(col, (val, line))
                if old[0] != val:
                    raise ValueError(f"{w}: {col} {raw} differs from {old[0]} given on line {old[1]}")
        except ValueError as err:
            raise PathsFileError(f"{file}: {err}") from None
    if not groups:
        raise PathsFileError(f"{file}: no paths below the header (one row per key point)")
    specs, where = [], []
    for g in groups:
        opts = {k: v for k, (v, _line) in g["options"].items()}
        w = f"line {g['line']}: path {g['name']!r}"
        if "frames" not in opts:
            raise PathsFileError(f"{file}: {w}: no 'frames' on any of its rows")
        try:
            specs.append(SequenceSpec(
                g["name"], opts["frames"], tuple(g["va"]), tuple(g["expressions"]), opts.get("closed", False),
                opts.get("fps", 12.0), opts.get("intensity", 1.0),
                (opts.get("sway_yaw", 0.0), opts.get("sway_pitch", 0.0))))
        except ValueError as err:
            raise PathsFileError(f"{file}: line {g['line']}: {err}") from None
        where.append(w)
    _check_unique(specs, where, file)
    return tuple(specs)


def load_paths_file(path: str | os.PathLike) -> tuple[SequenceSpec, ...]:
    """Read a ``--paths`` file: ``.csv`` as CSV, anything else as JSON.

    Args:
        path: the file.

    Returns:
        The sequences, in file order.

    Raises:
        FileNotFoundError: no such file.
        PathsFileError: the file is not UTF-8 or is malformed (see `parse_paths_json`,
            `parse_paths_csv`).
    """
    p = Path(path)
    try:
        data = p.read_bytes()
    except FileNotFoundError:
        raise FileNotFoundError(f"--paths {p}: no such file") from None
    except IsADirectoryError:
        raise PathsFileError(f"--paths {p}: is a folder; expected a .json or .csv file") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise PathsFileError(f"{p}: not UTF-8 text (byte {e.start})") from None
    if p.suffix.lower() == ".csv":
        return parse_paths_csv(text, file=str(p))
    return parse_paths_json(text, file=str(p))
