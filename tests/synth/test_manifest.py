from __future__ import annotations

import csv

import numpy as np
import pytest

from affectsynth.images import save_png
from affectsynth.manifest import COLUMNS, Manifest, ManifestError, ManifestRow, is_readable_image


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
