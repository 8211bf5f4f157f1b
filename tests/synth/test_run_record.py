"""The run record (run.json): what is compared, conflicts named old -> new, --overwrite, legacy rows."""

from __future__ import annotations

import dataclasses
import json

import pytest

from affectsynth.batch import GenerateSettings, RunSettingsConflict, run_batch
from affectsynth.blendshapes.targets import VA, Expression
from affectsynth.manifest import Manifest, ManifestRow
from affectsynth.run_record import (NOT_COMPARED, RUN_RECORD_NAME, RunRecord, check_run_settings, find_stale,
                                    load_record, run_settings, save_record)

TARGETS = (Expression("happiness"), VA(0.5, -0.25))


def _settings(**kw) -> GenerateSettings:
    return GenerateSettings(targets=kw.pop("targets", TARGETS), **kw)


def test_output_affecting_fields_are_compared_others_recorded():
    rs = run_settings(_settings(size=128, seed=7, workers=4, png_compress_level=9))
    assert rs.compared["size"] == 128 and rs.compared["seed"] == 7
    assert rs.compared["expressions_digest"] == "default" and "expressions_lib" not in rs.compared
    assert "workers" not in rs.compared and rs.info["workers"] == 4 and rs.info["png_compress_level"] == 9
    assert set(rs.targets) == {"happiness_i1.00", "va_+0.50_-0.25"}
    assert rs.id == run_settings(_settings(size=128, seed=7, workers=1)).id  # workers change nothing
    assert rs.id != run_settings(_settings(size=96, seed=7)).id
    assert rs.id == run_settings(_settings(size=128, seed=7, targets=TARGETS[:1])).id  # targets: per output
    assert rs.id.startswith("s") and len(rs.id) == 12


def test_a_new_settings_field_is_compared_unless_listed():
    """A field added later (here ``blur``) is compared by default; ``engine`` is listed as not."""
    Extended = dataclasses.make_dataclass(
        "Extended", [("blur", tuple, dataclasses.field(default=())), ("engine", str, dataclasses.field(default="local"))],
        bases=(GenerateSettings,), frozen=True)
    a = run_settings(Extended(targets=TARGETS, blur=(1.5,), engine="ray"))
    b = run_settings(Extended(targets=TARGETS, blur=(2.0,), engine="local"))
    assert a.compared["blur"] == [1.5] and "engine" not in a.compared and "engine" in NOT_COMPARED
    assert a.id != b.id
    assert run_settings(Extended(targets=TARGETS, engine="ray")).id == run_settings(Extended(targets=TARGETS)).id


def test_sequences_are_compared_per_frame_like_targets():
    """An edited ``--paths`` sequence changes its own ``path-<name>`` entry, not the run's id: a new
    sequence is new outputs, an edited one makes only its own frames stale."""
    from affectsynth.paths_file import SequenceSpec

    circle = SequenceSpec.from_dict({"name": "circle", "va": "circle", "frames": 4})
    smile = SequenceSpec.from_dict({"name": "smile", "expressions": ["neutral", "happiness"], "frames": 4})
    longer = SequenceSpec.from_dict({"name": "smile", "expressions": ["neutral", "happiness"], "frames": 6})
    a = run_settings(_settings(paths=(circle, smile)))
    b = run_settings(_settings(paths=(circle, longer)))
    assert a.id == b.id and "paths" not in a.compared
    assert a.targets["path-circle"] == b.targets["path-circle"]
    assert a.targets["path-smile"] != b.targets["path-smile"]


def test_expression_library_compared_by_content(tmp_path):
    lib = tmp_path / "lib.npz"
    lib.write_bytes(b"one")
    a = run_settings(_settings(expressions_lib=str(lib)))
    copy = tmp_path / "copy.npz"
    copy.write_bytes(b"one")
    assert run_settings(_settings(expressions_lib=str(copy))).id == a.id  # another path, same content
    lib.write_bytes(b"two")
    assert run_settings(_settings(expressions_lib=str(lib))).id != a.id


def test_record_round_trip_and_bad_file(tmp_path):
    assert load_record(tmp_path) == RunRecord()
    rs = run_settings(_settings(size=64))
    rec = RunRecord().updated(rs)
    save_record(tmp_path, rec)
    back = load_record(tmp_path)
    assert back.current == rs.id and back.runs[rs.id]["size"] == 64 and back.targets == json.loads(json.dumps(rs.targets))
    assert not list(tmp_path.glob("*.affectsynth-tmp"))
    (tmp_path / RUN_RECORD_NAME).write_text("{not json")
    with pytest.raises(ValueError, match=r"run\.json: not a run record.*move it away"):
        load_record(tmp_path)
    (tmp_path / RUN_RECORD_NAME).write_text(json.dumps({"format": 99}))
    with pytest.raises(ValueError, match="format 99"):
        load_record(tmp_path)


def test_find_stale_names_each_change_and_skips_unwanted_and_legacy_rows():
    old = run_settings(_settings(size=256, seed=0))
    new = run_settings(_settings(size=128, seed=7))
    rec = RunRecord().updated(old)
    rows = [ManifestRow("a.jpg", "a_jpg/f0_happiness_i1.00.png", "ok", settings_id=old.id),
            ManifestRow("a.jpg", "a_jpg/f0_fear_i1.00.png", "ok", settings_id=old.id),  # not wanted by this run
            ManifestRow("b.jpg", "b_jpg/f0_happiness_i1.00.png", "ok")]  # legacy: no id
    wanted = {"a_jpg/f0_happiness_i1.00.png": "happiness_i1.00", "b_jpg/f0_happiness_i1.00.png": "happiness_i1.00"}
    stale = find_stale(rows, wanted, new, rec)
    assert stale.outputs == ("a_jpg/f0_happiness_i1.00.png",)
    assert [c.text() for c in stale.changes] == ["seed 0 -> 7", "size 256 -> 128"]
    msg = stale.message("out")
    assert "1 output there" in msg and "seed 0 -> 7; size 256 -> 128" in msg and "--overwrite" in msg
    assert not find_stale(rows, wanted, old, rec)
    # a target whose slug is unchanged but whose value differs (0.504 and 0.5 both name _i0.50)
    t_old = run_settings(_settings(targets=(Expression("sadness", 0.504),)))
    t_new = run_settings(_settings(targets=(Expression("sadness", 0.5),)))
    row = ManifestRow("a.jpg", "a_jpg/f0_sadness_i0.50.png", "ok", settings_id=t_old.id)
    stale = find_stale([row], {row.output: "sadness_i0.50"}, t_new, RunRecord().updated(t_old))
    assert stale.outputs == (row.output,) and stale.changes[0].setting == "target sadness_i0.50"
    # unknown id (run.json was removed)
    stale = find_stale(rows[:1], wanted, new, RunRecord())
    assert stale.changes[0].text().startswith("settings (not recorded) ->")


def _done_dir(tmp_path, settings, n=2):
    """INPUT_DIR with ``n`` (unreadable: no synthesis needed) photos and OUTPUT_DIR settled by a real run."""
    inp = tmp_path / "in"
    inp.mkdir()
    for i in range(n):
        (inp / f"p{i}.jpg").write_bytes(b"not a photo")
    out = tmp_path / "out"
    s = run_batch(inp, out, settings, synthesizer=object())
    assert s.failed["unreadable"] == n * len(settings.targets)
    return inp, out


def test_run_batch_refuses_other_settings_and_overwrite_redoes(tmp_path):
    a = _settings(size=64, max_pixels=10_000_000)
    inp, out = _done_dir(tmp_path, a)
    rec = json.loads((out / RUN_RECORD_NAME).read_text())
    assert rec["current"] == run_settings(a).id and rec["runs"][rec["current"]]["size"] == 64
    before = (out / "manifest.csv").read_bytes()
    with pytest.raises(RunSettingsConflict, match=r"4 outputs .*size 64 -> 96"):
        run_batch(inp, out, _settings(size=96, max_pixels=10_000_000), synthesizer=object())
    assert (out / "manifest.csv").read_bytes() == before  # refused: nothing touched
    # not compared: workers, png compression; a new target is a new output, not a conflict
    s = run_batch(inp, out, _settings(size=64, max_pixels=10_000_000, workers=3, png_compress_level=6,
                                      targets=TARGETS + (Expression("fear"),)), synthesizer=object())
    assert s.failed["unreadable"] == 2 and s.overwritten == 0  # only the fear outputs were new
    # --overwrite: the 4 outputs of the first two targets are redone; the fear outputs were not asked for
    b = _settings(size=96, max_pixels=10_000_000)
    s = run_batch(inp, out, b, synthesizer=object(), overwrite=True)
    assert s.overwritten == 4 and s.failed["unreadable"] == 4
    rows = Manifest(out / "manifest.csv").rows
    ids = {r.output.rsplit("/", 1)[1]: r.settings_id for r in rows}
    assert ids["f0_happiness_i1.00.png"] == run_settings(b).id and ids["f0_fear_i1.00.png"] == run_settings(a).id
    # the fear rows still remember their settings: asking for them now names the difference
    with pytest.raises(RunSettingsConflict, match=r"2 outputs .*fear.*size 64 -> 96"):
        run_batch(inp, out, _settings(size=96, max_pixels=10_000_000, targets=(Expression("fear"),)),
                  synthesizer=object())


def test_legacy_rows_are_adopted_then_guarded(tmp_path):
    a = _settings(size=64)
    inp, out = _done_dir(tmp_path, a, n=1)
    # make it an older version's directory: no run.json, no settings_id in the rows
    (out / RUN_RECORD_NAME).unlink()
    m = Manifest(out / "manifest.csv")
    m.update(lambda r: dataclasses.replace(r, settings_id=""))
    s = run_batch(inp, out, a, synthesizer=object())
    assert s.already_done == 0 and s.standing_failed["unreadable"] == 2 and not s.failed  # resumed, no conflict
    assert {r.settings_id for r in Manifest(out / "manifest.csv").rows} == {run_settings(a).id}
    with pytest.raises(RunSettingsConflict, match="size 64 -> 80"):
        run_batch(inp, out, _settings(size=80), synthesizer=object())


def test_check_run_settings_on_a_read_only_manifest_changes_nothing(tmp_path):
    inp, out = _done_dir(tmp_path, _settings(size=64), n=1)
    before = (out / "manifest.csv").read_bytes()
    m = Manifest(out / "manifest.csv", readonly=True)
    _, _, stale = check_run_settings(inp, out, _settings(size=72), m, overwrite=True)
    assert len(stale.outputs) == 2 and not m.settled_outputs
    assert (out / "manifest.csv").read_bytes() == before


def test_overwrite_deletes_the_stale_file_before_redoing(tmp_path):
    """A stale output whose redo is skipped or fails must not leave the old image behind its new row."""
    from affectsynth.images import save_png
    import numpy as np

    inp, out = tmp_path / "in", tmp_path / "out"
    inp.mkdir()
    (inp / "a.jpg").write_bytes(b"not a photo")
    a, b = _settings(size=64, targets=TARGETS[:1]), _settings(size=96, targets=TARGETS[:1])
    rel = "a_jpg/f0_happiness_i1.00.png"
    save_png(out / rel, np.zeros((64, 64, 3), np.uint8))
    with Manifest(out / "manifest.csv") as m:
        m.append(ManifestRow("a.jpg", rel, "ok", settings_id=run_settings(a).id))
    save_record(out, RunRecord().updated(run_settings(a)))
    dry = Manifest(out / "manifest.csv", readonly=True)
    assert check_run_settings(inp, out, b, dry, overwrite=True)[2].outputs == (rel,) and (out / rel).exists()
    s = run_batch(inp, out, b, synthesizer=object(), overwrite=True)
    assert s.overwritten == 1 and s.failed["unreadable"] == 1
    assert not (out / rel).exists()  # the 64 px image made with the old settings is gone with its row
    (row,) = Manifest(out / "manifest.csv").rows
    assert row.status == "error" and row.settings_id == run_settings(b).id


def test_the_same_command_again_touches_no_file(tmp_path):
    inp, out = _done_dir(tmp_path, _settings(size=64), n=1)
    snap = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file() and p.name != ".affectsynth.lock"}
    run_batch(inp, out, _settings(size=64), synthesizer=object())
    assert {p: p.stat().st_mtime_ns for p in snap} == snap


def test_recorded_version_is_the_installed_one():
    from importlib.metadata import version

    from affectsynth.run_record import _version

    assert _version() == version("affectsynth")
