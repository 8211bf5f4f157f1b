"""The run record: the output-affecting settings of ``generate`` runs, kept in OUTPUT_DIR/run.json.

Why: a rerun into the same OUTPUT_DIR with other settings (``--size 128 --seed 7`` after
``--size 256 --seed 0``) used to count the old outputs as done, so files and labels silently
disagreed with the command. Now every run records its settings, every manifest row names the
settings that made it (``settings_id``), and a run that would reuse outputs made with other
settings refuses (`RunSettingsConflict`, naming each setting: old -> new) unless asked to redo
them (``--overwrite``).

What is compared: every `GenerateSettings` field, by default, so a field added later is compared
too, except those in :data:`NOT_COMPARED`: how the work is run (``workers``, ``device``, ...), the
PNG compression level (lossless: same pixels) and what only decides WHICH outputs are planned
(``targets``, ``per_image``, ``faces``, ``layout``: new targets are new outputs, with their own
names). A target is compared output by output instead: an output whose name (target slug) is
recorded with another target (e.g. intensity 0.504 vs 0.5, both ``_i0.50``) conflicts as
``target <slug>``. ``expressions_lib`` is compared by content (its digest), not by path.

File (written atomically, `affectsynth.atomic`)::

    {"format": 1, "version": "0.1.0", "current": "s1a2b3c4d5e6",
     "runs": {"s1a2b3c4d5e6": {"size": 128, "seed": 7, ..., "expressions_digest": "..."}},
     "targets": {"happiness_i1.00": {"kind": "expression", ...}},
     "info": {"workers": 4, "device": "cpu", ...}}

``runs`` keeps every settings set rows of this OUTPUT_DIR were made with (rows point at them);
``info`` the last run's uncompared settings, for the record. Rows with an empty ``settings_id``
(a manifest of a version before this record) are adopted by the first run that finds them: they
get its settings id, as if made with its settings (their settings are unknown; resuming with the
same command is the usual case), so that from then on a change of settings is caught.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

from affectsynth.atomic import atomic_write_text

__all__ = [
    "NOT_COMPARED",
    "check_run_settings",
    "RUN_RECORD_NAME",
    "RunRecord",
    "RunSettings",
    "RunSettingsConflict",
    "SettingChange",
    "StaleOutputs",
    "find_stale",
    "load_record",
    "run_settings",
    "save_record",
]

RUN_RECORD_NAME = "run.json"

#: `GenerateSettings` fields that do not change any output's pixels or labels, with why. Every
#: other field (including ones added later) is compared.
NOT_COMPARED: Mapping[str, str] = {
    "workers": "how many processes run the work",
    "device": "where synthesis runs (the same result up to float rounding)",
    "engine": "which engine runs the work",
    "progress": "display only",
    "quiet": "display only",
    "png_compress_level": "PNG is lossless at every level",
    "image_format": "planning: output names (the suffix); every format is lossless, a new one writes new files",
    "targets": "planning: new targets are new outputs (each target is compared per output)",
    "paths": "planning: new sequences are new outputs (each sequence is compared per frame, as a target)",
    "per_image": "planning: which targets each image draws; an output's pixels do not depend on it",
    "faces": "planning: which faces get outputs; face k's output does not depend on it",
    "layout": "planning: output names; a new layout writes new files",
}

_FORMAT = 1


def _jsonable(v: Any) -> Any:
    """A JSON-safe, comparable form of a settings value (tuples become lists, dataclasses dicts)."""
    if isinstance(v, (str, int, float, bool)) or v is None:
        return v
    if isinstance(v, os.PathLike):
        return os.fspath(v)
    if hasattr(v, "to_dict"):
        return _jsonable(v.to_dict())
    if dataclasses.is_dataclass(v) and not isinstance(v, type):
        return {f.name: _jsonable(getattr(v, f.name)) for f in dataclasses.fields(v)}
    if isinstance(v, Mapping):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple, set, frozenset)):
        return [_jsonable(x) for x in v]
    return repr(v)


def file_digest(path: str | os.PathLike) -> str:
    """blake2b-128 hex digest of a file's bytes."""
    h = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _version() -> str:
    """The package's version, from ``affectsynth.__version__`` (what the installed metadata says too;
    reading it from there costs ~15 ms CPU at every run's start: the import of importlib.metadata and
    a scan of the installed distributions)."""
    from affectsynth import __version__

    return __version__


@dataclass(frozen=True)
class RunSettings:
    """One run's settings split into what is compared and what is only recorded.

    Attributes:
        compared: field -> JSON value of every output-affecting setting (``expressions_lib``
            replaced by ``expressions_digest``: the library's content, "default" for the shipped one).
        targets: target slug -> the target's ``to_dict()``, and ``path-<name>`` -> each ``--paths``
            sequence's ``to_dict()`` (compared per output, per frame for a sequence).
        info: the uncompared fields (and the library path), for the record.
    """

    compared: Mapping[str, Any]
    targets: Mapping[str, Any]
    info: Mapping[str, Any]

    @property
    def id(self) -> str:
        """``s`` + 11 hex digits of the compared settings' digest (the manifest's ``settings_id``;
        the letter keeps pandas from reading it as a number)."""
        blob = json.dumps(self.compared, sort_keys=True, separators=(",", ":"))
        return "s" + hashlib.blake2b(blob.encode(), digest_size=8).hexdigest()[:11]


def run_settings(settings: Any) -> RunSettings:
    """Split a `GenerateSettings` (any dataclass of run options) into `RunSettings`.

    Raises:
        OSError: ``expressions_lib`` cannot be read (its digest is part of the settings).
    """
    from affectsynth.naming import sequence_slug, target_slug

    compared: dict[str, Any] = {}
    info: dict[str, Any] = {}
    for f in dataclasses.fields(settings):
        value = getattr(settings, f.name)
        if f.name == "expressions_lib":
            compared["expressions_digest"] = "default" if value is None else file_digest(value)
            info["expressions_lib"] = None if value is None else os.fspath(value)
        elif f.name in ("targets", "paths"):
            continue
        elif f.name in NOT_COMPARED:
            info[f.name] = _jsonable(value)
        else:
            compared[f.name] = _jsonable(value)
    targets = {target_slug(t): _jsonable(t) for t in getattr(settings, "targets", ())}
    targets.update({sequence_slug(p.name): _jsonable(p) for p in getattr(settings, "paths", ())})
    return RunSettings(compared, targets, info)


@dataclass
class RunRecord:
    """The content of ``run.json`` (see the module docstring)."""

    version: str = ""
    current: str = ""
    runs: dict[str, dict[str, Any]] = field(default_factory=dict)
    targets: dict[str, Any] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)

    def updated(self, current: RunSettings) -> "RunRecord":
        """This record after a run with ``current``: its settings added and made current, its
        targets replacing the recorded ones of the same slug."""
        return RunRecord(_version(), current.id, {**self.runs, current.id: dict(current.compared)},
                         {**self.targets, **current.targets}, dict(current.info))

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict (the file's layout)."""
        return {"format": _FORMAT, "version": self.version, "current": self.current, "runs": self.runs,
                "targets": self.targets, "info": self.info}


def load_record(output_dir: str | os.PathLike) -> RunRecord:
    """The record of ``output_dir`` (an empty one if there is no ``run.json``).

    Raises:
        ValueError: ``run.json`` is not a record this version reads (names the file and the fix).
    """
    path = Path(output_dir) / RUN_RECORD_NAME
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return RunRecord()
    try:
        d = json.loads(text)
        if not isinstance(d, dict) or d.get("format") != _FORMAT:
            raise ValueError(f"format {d.get('format') if isinstance(d, dict) else None!r}, expected {_FORMAT}")
        runs, targets = d.get("runs", {}), d.get("targets", {})
        if not isinstance(runs, dict) or not all(isinstance(v, dict) for v in runs.values()) \
                or not isinstance(targets, dict):
            raise ValueError("'runs' and 'targets' must be objects")
        return RunRecord(str(d.get("version", "")), str(d.get("current", "")), runs, targets,
                         d.get("info", {}) if isinstance(d.get("info"), dict) else {})
    except ValueError as e:  # json.JSONDecodeError is a ValueError
        raise ValueError(f"{path}: not a run record ({e}); move it away to record this run's settings afresh "
                         "(outputs already made are then accepted as they are)") from None


def save_record(output_dir: str | os.PathLike, record: RunRecord) -> Path:
    """Write ``run.json`` atomically (a reader sees the old or the new record, never half of one);
    an unchanged record is not rewritten, so a rerun of the same command touches no file."""
    path = Path(output_dir) / RUN_RECORD_NAME
    text = json.dumps(record.to_dict(), indent=1, sort_keys=True) + "\n"
    try:
        if path.read_text(encoding="utf-8") == text:
            return path
    except (OSError, UnicodeDecodeError):
        pass
    atomic_write_text(path, text)
    return path


@dataclass(frozen=True)
class SettingChange:
    """One setting that differs between the outputs' run and this one."""

    setting: str
    old: Any
    new: Any

    def text(self) -> str:
        """``size 256 -> 128``."""
        def show(v: Any) -> str:
            if v is _MISSING:
                return "(not recorded)"
            return "none" if v is None else json.dumps(v)

        return f"{self.setting} {show(self.old)} -> {show(self.new)}"


_MISSING = object()


@dataclass(frozen=True)
class StaleOutputs:
    """Outputs this run would reuse although other settings made them.

    Attributes:
        outputs: their paths (relative to OUTPUT_DIR), in manifest order.
        changes: every setting that differs, over all of them (first seen first).
    """

    outputs: tuple[str, ...] = ()
    changes: tuple[SettingChange, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.outputs)

    def message(self, output_dir: str | os.PathLike) -> str:
        """The refusal: what differs and the ways out."""
        n = len(self.outputs)
        return (f"OUTPUT_DIR {output_dir}: {n} output{'s' if n != 1 else ''} there (e.g. {self.outputs[0]}) "
                f"{'were' if n != 1 else 'was'} made with other settings: {'; '.join(c.text() for c in self.changes)} "
                f"(recorded in {Path(output_dir) / RUN_RECORD_NAME}). Rerun with --overwrite to redo "
                "them with these settings, use another OUTPUT_DIR, or repeat the earlier settings")


class RunSettingsConflict(ValueError):
    """A run would reuse outputs made with other settings (see `StaleOutputs.message`)."""

    def __init__(self, stale: StaleOutputs, output_dir: str | os.PathLike) -> None:
        super().__init__(stale.message(output_dir))
        self.stale = stale


def find_stale(rows: Iterable[Any], wanted: Mapping[str, str], current: RunSettings,
               record: RunRecord) -> StaleOutputs:
    """The rows' outputs that this run wants but other settings made.

    Args:
        rows: manifest rows (``output``, ``settings_id``) that a rerun would leave alone.
        wanted: output path -> target slug, for every output this run would make.
        current: this run's settings.
        record: the OUTPUT_DIR's record.

    A row with an empty ``settings_id`` (an older version's) is accepted (`check_run_settings`
    adopts it); one whose id the record lacks (``run.json`` removed) is stale, its settings
    "(not recorded)".
    """
    outputs: list[str] = []
    changes: dict[tuple, SettingChange] = {}
    for r in rows:
        slug = wanted.get(r.output)
        if slug is None or not r.settings_id:
            continue
        diffs: list[SettingChange] = []
        if r.settings_id != current.id:
            old = record.runs.get(r.settings_id)
            if old is None:
                diffs.append(SettingChange("settings", _MISSING, current.id))
            else:
                for k in sorted(set(old) | set(current.compared)):
                    a, b = old.get(k, _MISSING), current.compared.get(k, _MISSING)
                    if a != b:
                        diffs.append(SettingChange(k, a, b))
        old_target = record.targets.get(slug)
        if old_target is not None and old_target != current.targets.get(slug):
            diffs.append(SettingChange(f"target {slug}", old_target, current.targets.get(slug)))
        if diffs:
            outputs.append(r.output)
            for c in diffs:
                changes.setdefault((c.setting, json.dumps(c.old, default=str), json.dumps(c.new, default=str)), c)
    return StaleOutputs(tuple(outputs), tuple(changes.values()))


def check_run_settings(input_dir: str | os.PathLike, output_dir: str | os.PathLike, settings: Any, manifest: Any,
                       *, overwrite: bool = False) -> tuple[RunSettings, RunRecord, StaleOutputs]:
    """Compare this run's settings with those of the outputs it would reuse; refuse or forget them.

    Args:
        input_dir, output_dir: the run's folders.
        settings: its `GenerateSettings`.
        manifest: the OUTPUT_DIR's `affectsynth.manifest.Manifest` (loaded; closed).
        overwrite: forget the stale outputs' rows (`Manifest.drop`) and delete their files, so
            that the run redoes them, instead of raising (a read-only manifest, for a dry run,
            forgets them in memory only and deletes nothing).

    Returns:
        (this run's settings, the record as found, the stale outputs: dropped if ``overwrite``).

    Raises:
        RunSettingsConflict: stale outputs and not ``overwrite``.
        ValueError: an unreadable ``run.json``.
    """
    current = run_settings(settings)
    record = load_record(output_dir)
    stale = StaleOutputs()
    other_ids = any(r.settings_id and r.settings_id != current.id for r in manifest.rows)
    if other_ids or _targets_changed(record, current):  # else nothing can be stale: skip planning
        from affectsynth.naming import sequence_slug
        from affectsynth.plan import plan_jobs

        wanted: dict[str, str] = {}
        for job in plan_jobs(input_dir, output_dir, settings, manifest=None).jobs:
            faces = {0} | {r.face for r in manifest.rows_for(job.rel_source) if r.face is not None}
            for k in faces:
                for t in job.targets:
                    wanted[job.output_for(t, k)] = _slug(t)
                for f in job.frames_for(k):  # a sequence's frames are compared as one target
                    wanted[f.output] = sequence_slug(f.sequence)
        stale = find_stale(manifest.rows, wanted, current, record)
    if stale and not overwrite:
        raise RunSettingsConflict(stale, output_dir)
    if stale:
        manifest.drop(stale.outputs)
        if not manifest.readonly:  # a redo that now fails or skips must not leave the old file behind
            from affectsynth.naming import safe_join

            for rel in stale.outputs:
                Path(safe_join(output_dir, rel)).unlink(missing_ok=True)
    if any(not r.settings_id for r in manifest.rows):  # an older version's rows: adopt them (see below)
        manifest.update(lambda r: r if r.settings_id else dataclasses.replace(r, settings_id=current.id))
    return current, record, stale


def _slug(target: Any) -> str:
    from affectsynth.naming import target_slug

    return target_slug(target)


def _targets_changed(record: RunRecord, current: RunSettings) -> bool:
    return any(record.targets.get(s, v) != v for s, v in current.targets.items())
