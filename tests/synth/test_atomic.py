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


def test_bytes_write_creates_folders_mode_0644_and_cleans_up_on_failure(tmp_path):
    p = tmp_path / "a" / "b" / "out.png"
    atomic_write_bytes(p, b"\x89PNG" * 30000, fsync=False)
    assert p.read_bytes() == b"\x89PNG" * 30000
    assert (p.stat().st_mode & 0o777) == 0o644
    with pytest.raises(TypeError):
        atomic_write_bytes(p, "not bytes", fsync=False)  # fails after the temporary file exists
    assert p.read_bytes() == b"\x89PNG" * 30000
    assert os.listdir(p.parent) == ["out.png"]


def test_a_stale_temporary_with_the_same_name_is_skipped_not_reused(tmp_path, monkeypatch):
    import itertools

    import affectsynth.atomic as atomic

    monkeypatch.setattr(atomic, "_TEMP_NUMBERS", itertools.count())
    stale = tmp_path / f".x.png.{os.getpid()}-0{TMP_SUFFIX}"  # what a dead writer with our pid left
    stale.write_bytes(b"partial")
    atomic_write_bytes(tmp_path / "x.png", b"new", fsync=False)
    assert (tmp_path / "x.png").read_bytes() == b"new" and stale.read_bytes() == b"partial"


def test_text_write_keeps_newlines_as_asked(tmp_path):
    p = tmp_path / "t.csv"
    with atomic_write(p, "w", newline="") as f:
        f.write("a,b\r\nc,d\r\n")
    assert p.read_bytes() == b"a,b\r\nc,d\r\n"
    atomic_write_text(p, "é\n", fsync=False)
    assert p.read_bytes() == "é\n".encode()
