from __future__ import annotations

import os
from pathlib import PurePosixPath

import pytest

from affectsynth.blendshapes.targets import VA, AUs, Expression
from affectsynth.naming import (UnsafePathError, display_path, find_images, output_relpath, safe_join, source_relpath,
                                target_slug)


def test_target_slugs():
    assert target_slug(Expression("happiness", 1.0)) == "happiness_i1.00"
    assert target_slug(Expression("sadness", 0.5)) == "sadness_i0.50"
    assert target_slug(VA(0.5, -0.25)) == "va_+0.50_-0.25"
    assert target_slug(AUs({"AU12": 0.8, "AU6": 0.5})) == "aus_AU12-0.80_AU6-0.50"
    with pytest.raises(TypeError):
        target_slug("happiness")


def test_nested_names_keep_subfolders_and_never_collide():
    sources = ["img.jpg", "img.png", "img_jpg.png", "a/img.jpg", "b/img.jpg", "a/b/img.jpg", "IMG.JPG"]
    outs = [output_relpath(s, "happiness_i1.00", 0) for s in sources]
    assert len(set(outs)) == len(outs)
    assert outs[3] == PurePosixPath("a/img_jpg/f0_happiness_i1.00.png")
    assert output_relpath("a/img.jpg", "x", 2) == PurePosixPath("a/img_jpg/f2_x.png")


def test_flat_names_never_collide():
    sources = ["a__b/c.jpg", "a/b__c.jpg", "a/c.jpg", "b/c.jpg", "c.jpg"]
    outs = [output_relpath(s, "x", 0, layout="flat") for s in sources]
    assert len(set(outs)) == len(outs) and all(len(o.parts) == 1 for o in outs)


@pytest.mark.parametrize("bad", ["../x.jpg", "/abs/x.jpg", "a/../../x.jpg"])
def test_unsafe_sources_are_refused(bad):
    with pytest.raises(UnsafePathError):
        output_relpath(bad, "x", 0)


def test_bad_layout_and_face():
    with pytest.raises(ValueError, match="layout"):
        output_relpath("a.jpg", "x", 0, layout="tree")
    with pytest.raises(ValueError, match="face"):
        output_relpath("a.jpg", "x", -1)


def test_safe_join_refuses_escapes(tmp_path):
    root = tmp_path / "out"
    root.mkdir()
    (tmp_path / "elsewhere").mkdir()
    os.symlink(tmp_path / "elsewhere", root / "link")
    assert safe_join(root, "a/b.png") == root / "a" / "b.png"
    for bad in ["../x.png", "/etc/x.png", "link/x.png", "a/../../x.png"]:
        with pytest.raises(UnsafePathError):
            safe_join(root, bad)


def test_safe_join_checks_symlinks_at_any_depth_and_allows_those_that_stay_inside(tmp_path):
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "f.png").write_bytes(b"x")
    real_root = tmp_path / "real_out"
    (real_root / "a" / "b").mkdir(parents=True)
    root = tmp_path / "out"
    os.symlink(real_root, root)  # OUTPUT_DIR itself a symlink: fine
    os.symlink(outside, real_root / "a" / "b" / "deep")  # a folder link two levels down
    os.symlink(outside / "f.png", real_root / "a" / "f.png")  # a file link
    os.symlink(real_root / "a", real_root / "inside")  # a link that stays inside
    assert safe_join(root, "a/b/new/x.png") == root / "a" / "b" / "new" / "x.png"
    assert safe_join(root, "inside/b/x.png") == root / "inside" / "b" / "x.png"
    for bad in ["a/b/deep/x.png", "a/b/deep", "a/f.png"]:
        with pytest.raises(UnsafePathError):
            safe_join(root, bad)


def test_source_relpath(tmp_path):
    assert source_relpath(tmp_path / "a" / "b.jpg", tmp_path) == PurePosixPath("a/b.jpg")
    with pytest.raises(UnsafePathError):
        source_relpath(tmp_path.parent / "x.jpg", tmp_path)


def test_find_images_recursive_case_insensitive_sorted(tmp_path):
    for rel in ["b/x.JPG", "a/y.png", "a/z.TIFF", "c.webp", "d.bmp", "e.jpeg", "notes.txt", ".hidden.png",
                ".cache/q.png", "out/o.png"]:
        p = tmp_path / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"x")
    found = [p.relative_to(tmp_path).as_posix() for p in find_images(tmp_path, exclude=tmp_path / "out")]
    assert found == ["c.webp", "d.bmp", "e.jpeg", "a/y.png", "a/z.TIFF", "b/x.JPG"]
    with pytest.raises(NotADirectoryError):
        list(find_images(tmp_path / "c.webp"))


HOSTILE = ["a_b.jpg", "a:b.jpg", "a?b.jpg", "a*b.jpg", "a|b.jpg", 'a"b.jpg', "a\\b.jpg", "a<b.jpg", "a>b.jpg",
           "a\nb.jpg", "a\tb.jpg", "a\rb.jpg", "a\x00b.jpg", "a_b~0123456789.jpg", "a_b~0123456789_jpg.png",
           os.fsdecode(b"caf\xe9.jpg"), "caf\u00e9.jpg", "caf\\xe9.jpg", os.fsdecode(b"a\xffb.jpg"),
           "a:b/x.jpg", "a_b/x.jpg", "a_b~0123456789/x.jpg", "x" * 250 + ".jpg", "x" * 251 + ".jpg", "a", "a."]


@pytest.mark.parametrize("layout", ["nested", "flat"])
def test_hostile_names_map_to_distinct_safe_outputs(layout):
    shown = [display_path(n) for n in HOSTILE]
    assert len(set(shown)) == len(HOSTILE)  # one display form per name
    assert all(s.isprintable() for s in shown)
    outs = [output_relpath(s, "happiness_i1.00", 0, layout=layout) for s in shown]
    assert len(set(outs)) == len(outs)
    for o in outs:
        assert all(len(part.encode()) <= 255 and not set(part) & set('<>:"\\|?*\n\r\t\x00') for part in o.parts)


def test_ordinary_names_keep_their_layout_and_marked_names_stay_readable():
    assert output_relpath(display_path("train/img.jpg"), "x") == PurePosixPath("train/img_jpg/f0_x.png")
    marked = output_relpath(display_path("a:b.jpg"), "x")
    assert str(marked).startswith("a_b~") and str(marked).endswith("_jpg/f0_x.png")
    assert display_path(os.fsdecode(b"caf\xe9.jpg")) == "caf\\xe9.jpg"
