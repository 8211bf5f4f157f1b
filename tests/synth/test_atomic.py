from __future__ import annotations

import os

import pytest

from affectsynth.atomic import TMP_SUFFIX, atomic_write, atomic_write_bytes, atomic_write_text, remove_stale_temps


def test_write_replaces_and_leaves_no_temp(tmp_path):
    p = tmp_path / "sub" / "a.bin"
    atomic_write_bytes(p, b"one")
    atomic_write_bytes(p, b"two")
    assert p.read_bytes() == b"two"
    assert [q.name for q in p.parent.iterdir()] == ["a.bin"]


def test_failure_keeps_old_file_and_removes_temp(tmp_path):
    p = tmp_path / "a.txt"
    atomic_write_text(p, "old")
    with pytest.raises(RuntimeError):
        with atomic_write(p, "w") as f:
            f.write("new, partial")
            raise RuntimeError("boom")
    assert p.read_text() == "old"
    assert sorted(q.name for q in tmp_path.iterdir()) == ["a.txt"]


def test_bad_mode_raises(tmp_path):
    with pytest.raises(ValueError, match="mode"):
        with atomic_write(tmp_path / "x", "a"):
            pass


def test_remove_stale_temps(tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / (".x.png.123" + TMP_SUFFIX)).write_bytes(b"partial")
    (tmp_path / "d" / "keep.png").write_bytes(b"x")
    assert remove_stale_temps(tmp_path) == 1
    assert os.listdir(tmp_path / "d") == ["keep.png"]
