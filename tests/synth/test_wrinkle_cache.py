"""The wrinkle maps' disk cache: later processes read back exactly what a build gives, and a
damaged cache file is rebuilt, never used."""

from __future__ import annotations

import torch

from affectsynth.face_render import FaceRenderer
from affectsynth.fitting import FaceModel
from affectsynth.wrinkles import _build_wrinkle_maps, _disk_cache_path, wrinkle_maps

FIELDS = ("texture", "drive", "depth_cm", "width_cm", "lift_dark")


def test_cached_maps_equal_a_fresh_build_and_a_damaged_file_is_rebuilt(tmp_path, monkeypatch):
    monkeypatch.setenv("AFFECTSYNTH_CACHE_DIR", str(tmp_path))
    renderer = FaceRenderer(FaceModel.default())
    res = 64  # small: the build is the same code at any size
    built = _build_wrinkle_maps(renderer, res)
    wrinkle_maps.cache_clear()
    first = wrinkle_maps(renderer, res)  # builds and writes the file
    path = _disk_cache_path(renderer, res)
    assert path is not None and path.parent == tmp_path and path.is_file()
    wrinkle_maps.cache_clear()
    loaded = wrinkle_maps(renderer, res)  # read back from disk
    for k in FIELDS:
        assert torch.equal(getattr(first, k), getattr(built, k)), k
        assert torch.equal(getattr(loaded, k), getattr(built, k)), k
    path.write_bytes(b"not a torch file")
    wrinkle_maps.cache_clear()
    again = wrinkle_maps(renderer, res)
    for k in FIELDS:
        assert torch.equal(getattr(again, k), getattr(built, k)), k
    assert path.stat().st_size > 1000  # rewritten with the good maps
    wrinkle_maps.cache_clear()


def test_other_resolution_gets_its_own_file(tmp_path, monkeypatch):
    monkeypatch.setenv("AFFECTSYNTH_CACHE_DIR", str(tmp_path))
    renderer = FaceRenderer(FaceModel.default())
    assert _disk_cache_path(renderer, 64) != _disk_cache_path(renderer, 128)
