from __future__ import annotations

import csv
import os
import subprocess
import sys

import numpy as np
import pytest

from affectsynth.images import save_png
from affectsynth.manifest import COLUMN_TYPES, COLUMNS, Manifest, ManifestError, ManifestRow, is_readable_image


def _ok(out: str, **kw) -> ManifestRow:
    return ManifestRow("a.jpg", out, "ok", target_kind="expression", expression="happiness", intensity=1.0,
                       seed=5, face=0, n_faces=1, yaw=1.5, pitch=-2.0, roll=0.25,
                       weights=ManifestRow.weights_json({"jawOpen": 0.123456, "mouthSmile_L": 0.0}), **kw)


def test_columns_start_with_the_required_ones():
    assert COLUMNS[:10] == ("source", "output", "status", "error", "target_kind", "expression", "intensity",
                            "valence", "arousal", "seed")
    assert {"yaw", "pitch", "roll", "weights"} <= set(COLUMNS)


def test_append_then_reopen_knows_done(tmp_path):
    save_png(tmp_path / "o1.png", np.zeros((4, 4, 3), np.uint8))
    with Manifest(tmp_path / "manifest.csv") as m:
        m.append(_ok("o1.png"))
        m.append(ManifestRow("b.jpg", "o2.png", "error", "unreadable: ImageLoadError: b.jpg: empty\nfile"))
        m.append(ManifestRow("c.jpg", "o3.png", "skipped", "no-face: no face found"))
    m2 = Manifest(tmp_path / "manifest.csv")
    assert m2.done_outputs == {"o1.png", "o3.png"}
    assert not m2.is_done("o2.png")
    with open(tmp_path / "manifest.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 3 and rows[1]["error"] == "unreadable: ImageLoadError: b.jpg: empty file"
    assert rows[0]["weights"] == '{"jawOpen":0.1235}'
    back = ManifestRow.from_csv_dict(rows[0])
    assert back == _ok("o1.png")
    assert m2.rows[1].reason == "unreadable"


def test_truncated_last_line_is_dropped_and_append_resumes(tmp_path):
    save_png(tmp_path / "o1.png", np.zeros((4, 4, 3), np.uint8))
    with Manifest(tmp_path / "manifest.csv") as m:
        m.append(_ok("o1.png"))
    with open(tmp_path / "manifest.csv", "a") as f:
        f.write("a.jpg,o2.png,ok,,expr")  # a killed writer: no newline
    m = Manifest(tmp_path / "manifest.csv")
    assert m.done_outputs == {"o1.png"} and m.dropped_rows == 0
    with m:
        m.append(ManifestRow("z.jpg", "o9.png", "skipped", "no-face: x"))
    lines = (tmp_path / "manifest.csv").read_text().splitlines()
    assert len(lines) == 3 and lines[-1].startswith("z.jpg,o9.png,skipped")


def test_ok_rows_with_missing_or_corrupt_outputs_are_not_done(tmp_path):
    save_png(tmp_path / "good.png", np.zeros((4, 4, 3), np.uint8))
    (tmp_path / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\nxxxx")
    with Manifest(tmp_path / "manifest.csv") as m:
        for o in ("good.png", "missing.png", "corrupt.png"):
            m.append(_ok(o))
    m = Manifest(tmp_path / "manifest.csv")
    assert m.done_outputs == {"good.png"} and m.dropped_rows == 2
    assert len((tmp_path / "manifest.csv").read_text().splitlines()) == 2  # rewritten without them
    assert is_readable_image(tmp_path / "good.png") and not is_readable_image(tmp_path / "corrupt.png")


def test_is_readable_image_catches_crash_leftovers(tmp_path):
    good = tmp_path / "good.png"
    save_png(good, np.arange(300, dtype=np.uint8).reshape(10, 10, 3))
    data = good.read_bytes()
    cases = {"empty.png": b"", "zeros.png": bytes(len(data)), "cut.png": data[:-20], "cut2.png": data[: len(data) // 2]}
    for name, blob in cases.items():
        (tmp_path / name).write_bytes(blob)
        assert not is_readable_image(tmp_path / name), name
        assert not is_readable_image(tmp_path / name, full=True), name
    assert is_readable_image(good) and is_readable_image(good, full=True)
    flipped = bytearray(data)
    flipped[60] ^= 0xFF  # inside the image data: only the full check sees it
    (tmp_path / "flip.png").write_bytes(bytes(flipped))
    assert not is_readable_image(tmp_path / "flip.png", full=True)
    assert not is_readable_image(tmp_path / "missing.png")


def test_readonly_never_writes(tmp_path):
    p = tmp_path / "manifest.csv"
    with Manifest(p) as m:
        m.append(_ok("missing.png"))
    before = p.read_bytes()
    m = Manifest(p, readonly=True)
    assert p.read_bytes() == before and not m.done_outputs
    with pytest.raises(ValueError, match="read-only"):
        m.append(_ok("x.png"))


def test_other_columns_are_refused(tmp_path):
    (tmp_path / "manifest.csv").write_text("a,b\n1,2\n")
    with pytest.raises(ManifestError, match="new OUTPUT_DIR"):
        Manifest(tmp_path / "manifest.csv")


def test_bad_status():
    with pytest.raises(ValueError, match="status"):
        ManifestRow("a", "b", "done")


def _header() -> str:
    return ",".join(COLUMNS) + "\n"


def test_a_bom_a_blank_file_and_an_oversized_field_are_repaired(tmp_path):
    p = tmp_path / "manifest.csv"
    p.write_bytes(b"\xef\xbb\xbf" + _header().encode() + b"a.jpg,o.png,skipped,no-face: x" + b"," * (len(COLUMNS) - 4) + b"\n")
    m = Manifest(p)
    assert m.is_done("o.png") and not p.read_bytes().startswith(b"\xef\xbb\xbf")
    p.write_text("\n")
    assert Manifest(p).rows == [] and p.read_text() == _header()
    big = "x" * (2 << 20)  # over csv's default field limit (128 kB) and our row limit
    p.write_text(_header() + f"a.jpg,big.png,skipped,no-face: {big}" + "," * (len(COLUMNS) - 4) + "\n"
                 + "b.jpg,o2.png,skipped,no-face: y" + "," * (len(COLUMNS) - 4) + "\n")
    m = Manifest(p)
    assert m.done_outputs == {"o2.png"} and m.dropped_rows == 1 and p.stat().st_size < 1000


def test_a_symlinked_manifest_is_refused(tmp_path):
    target = tmp_path / "elsewhere.csv"
    target.write_text(_header())
    (tmp_path / "out").mkdir()
    os.symlink(target, tmp_path / "out" / "manifest.csv")
    with pytest.raises(ManifestError, match="symlink"):
        Manifest(tmp_path / "out" / "manifest.csv")
    assert target.read_text() == _header()


def test_one_row_per_output_after_reopen(tmp_path):
    save_png(tmp_path / "o1.png", np.zeros((4, 4, 3), np.uint8))
    with Manifest(tmp_path / "manifest.csv") as m:  # what older versions or two runs left behind
        m.append(ManifestRow("a.jpg", "o1.png", "error", "worker-crashed: x"))
        m.append(_ok("o1.png"))
        m.append(_ok("o1.png"))
        m.append(ManifestRow("b.jpg", "o2.png", "error", "unreadable: x"))
        m.append(ManifestRow("b.jpg", "o2.png", "error", "unreadable: x"))
        m.append(ManifestRow("c.jpg", "o3.png", "error", "write-failed: x"))
    m = Manifest(tmp_path / "manifest.csv")
    assert [(r.output, r.status) for r in m.rows] == [("o1.png", "ok"), ("o2.png", "error")]
    assert m.settled_outputs == {"o1.png", "o2.png"} and m.retried_rows == 2
    assert len((tmp_path / "manifest.csv").read_text().splitlines()) == 3


def test_rows_never_hold_control_characters():
    row = ManifestRow("a.jpg", "o.png", "error", "unreadable: caf\udce9.jpg: bad\x00\x1b[31m")
    assert row.error == "unreadable: caf\\xe9.jpg: bad\\x00\\x1b[31m"
    with pytest.raises(ValueError, match="display_path"):
        ManifestRow("a\rb.jpg", "o.png", "ok")


def test_a_failed_write_leaves_whole_lines_only(tmp_path):
    # A real write fault without root: a file size limit (RLIMIT_FSIZE) below what the rows need.
    p = tmp_path / "manifest.csv"
    with Manifest(p) as m:
        m.append(ManifestRow("a.jpg", "o1.png", "skipped", "no-face: x"))
    before = p.read_bytes()
    code = f"""
import resource, signal, sys
sys.path[:0] = {sys.path!r}
from affectsynth.manifest import Manifest, ManifestRow
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
m = Manifest({str(p)!r})
resource.setrlimit(resource.RLIMIT_FSIZE, ({len(before) + 300}, resource.RLIM_INFINITY))
try:
    m.extend([ManifestRow("b.jpg", f"o{{i}}.png", "skipped", "no-face: " + "y" * 50) for i in range(20)])
except OSError as e:
    print("failed", e.errno)
"""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.stdout.startswith("failed"), r.stderr
    assert p.read_bytes() == before  # cut back to the last complete line


def test_a_manifest_of_an_earlier_version_resumes(tmp_path):
    """A manifest whose columns are a prefix of today's (written before the variant/aus/verify columns)
    is read, its rows kept, and rewritten with the new columns empty: upgrading does not lose a run."""
    old = COLUMNS[:16]  # source .. weights: the columns of the first release
    path = tmp_path / "manifest.csv"
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(old)
        w.writerow(["a.jpg", "a_jpg/f0_happiness.png", "skipped", "no-face: none found"] + [""] * (len(old) - 4))
    m = Manifest(path, output_root=tmp_path)
    assert "a_jpg/f0_happiness.png" in m.done_outputs
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    assert tuple(rows[0]) == COLUMNS and len(rows) == 2 and rows[1][:3] == ["a.jpg", "a_jpg/f0_happiness.png", "skipped"]


def test_rejected_rows_are_done_and_not_redone(tmp_path):
    path = tmp_path / "manifest.csv"
    with Manifest(path, output_root=tmp_path) as m:
        m.extend([ManifestRow("a.jpg", "a_jpg/f0_anger.png", "rejected", "verify-low: score 0.05 < 0.1 (AU4 0.9->0.1)",
                              verify_score=0.05)])
    again = Manifest(path, output_root=tmp_path)
    assert "a_jpg/f0_anger.png" in again.done_outputs
    assert [r.reason for r in again.rows] == ["verify-low"]


#: The columns of the release before the box/size/rotation/lighting/AU/landmark columns (21).
PREVIOUS_COLUMNS = ("source", "output", "status", "error", "target_kind", "expression", "intensity", "valence",
                    "arousal", "seed", "face", "n_faces", "yaw", "pitch", "roll", "weights", "variant", "aus",
                    "verify_score", "verify_face", "verify_aus")


def test_new_columns_come_after_the_previous_release(tmp_path):
    """The previous release's manifest (21 columns, an ok row with its PNG) resumes: rows kept, new columns empty."""
    assert COLUMNS[:len(PREVIOUS_COLUMNS)] == PREVIOUS_COLUMNS
    assert COLUMNS[len(PREVIOUS_COLUMNS):] == (
        "face_x0", "face_y0", "face_x1", "face_y1", "crop_x0", "crop_y0", "crop_x1", "crop_y1", "out_width",
        "out_height", "head_rotation_yaw", "head_rotation_pitch", "light_azimuth", "light_strength",
        "au_activations", "landmarks", "settings_id", "sequence", "frame", "time_s")
    from affectsynth.images import save_png

    save_png(tmp_path / "a_jpg" / "f0_happiness_i1.00.png", np.zeros((8, 8, 3), np.uint8))
    path = tmp_path / "manifest.csv"
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(PREVIOUS_COLUMNS)
        w.writerow(["a.jpg", "a_jpg/f0_happiness_i1.00.png", "ok", "", "expression", "happiness", "1", "0.8", "0.35",
                    "5", "0", "1", "1.5", "-2", "0.5", '{"mouthSmile_L":1.0}', "open", "", "", "", ""])
    m = Manifest(path, output_root=tmp_path)
    assert m.is_done("a_jpg/f0_happiness_i1.00.png")
    r = m.rows[0]
    assert r.yaw == 1.5 and r.out_width is None and r.landmarks == "" and r.settings_id == ""
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    assert tuple(rows[0]) == COLUMNS and rows[0]["weights"] == '{"mouthSmile_L":1.0}' and rows[0]["crop_x0"] == ""


def test_typed_columns_round_trip(tmp_path):
    row = ManifestRow("a.jpg", "o.png", "ok", face_x0=10.25, face_y0=20.5, face_x1=60.0, face_y1=80.75, crop_x0=-5,
                      crop_y0=3, crop_x1=91, crop_y1=99, out_width=64, out_height=64, head_rotation_yaw=-3.5,
                      head_rotation_pitch=2.0, light_azimuth=12.5, light_strength=0.25, au_activations='{"AU6":0.5}',
                      landmarks="[[1.5,2.25]]", settings_id="s0123456789a", verify_face=False)
    assert ManifestRow.from_csv_dict(row.to_csv_dict()) == row
    assert COLUMN_TYPES["crop_x0"] == "int" and COLUMN_TYPES["face_x0"] == "float" and COLUMN_TYPES["landmarks"] == "str"


def test_drop_forgets_rows_and_rewrites(tmp_path):
    p = tmp_path / "manifest.csv"
    with Manifest(p) as m:
        m.extend([ManifestRow("a.jpg", "a.png", "skipped", "no-face: x"), ManifestRow("b.jpg", "b.png", "skipped", "no-face: y")])
    m = Manifest(p)
    assert m.drop(["a.png", "zzz.png"]) == 1 and not m.is_done("a.png") and m.rows_for("a.jpg") == []
    assert Manifest(p).done_outputs == {"b.png"}
