"""A regular (non-editable) install carries every package and the embedded face model.

Editable installs read the source tree, so a package or data file missing from pyproject.toml only
shows up for users who `pip install` the project; building the wheel catches it here.
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE_DIRS = {"synth": "affectsynth", "fitting": "affectsynth/fitting", "blendshapes": "affectsynth/blendshapes",
                "render": "affectsynth/render"}


@pytest.mark.skipif(importlib.util.find_spec("setuptools") is None, reason="needs setuptools to build the wheel")
def test_wheel_contains_all_modules_and_the_face_model(tmp_path):
    # Build from a clean copy: an in-tree build/ directory would hide missing package data.
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    for d in PACKAGE_DIRS:
        shutil.copytree(ROOT / d, src / d, ignore=shutil.ignore_patterns("__pycache__", "*.nbi", "*.nbc"))
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                        "-w", str(tmp_path / "dist"), str(src)], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    (wheel,) = (tmp_path / "dist").glob("affectsynth-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = {f"{prefix}/{py.relative_to(ROOT / src).as_posix()}"
                for src, prefix in PACKAGE_DIRS.items() for py in (ROOT / src).rglob("*.py")}
    assert len(expected) > 50
    assert expected <= names, sorted(expected - names)[:10]
    assert {"affectsynth/fitting/data/face_model.npz", "affectsynth/fitting/data/LICENSE-ICT-FaceKit",
            "affectsynth/fitting/data/LICENSE-MediaPipe", "affectsynth/data/astronaut.png",
            "affectsynth/data/README.md",
            "affectsynth/fitting/data/mediapipe_face_detection_short_range.npz",
            "affectsynth/fitting/data/mediapipe_face_detection_full_range.npz",
            "affectsynth/fitting/data/mediapipe_face_landmark_with_attention.npz"} <= names
