"""The wheel installs into a brand-new venv next to current pandas and pyarrow, and `affectsynth demo` runs.

Slow (a venv, a CPU torch, pandas, pyarrow from the package index or its cache): marked ``slow``,
so CI (README's test command) runs it and ``-m "not slow"`` leaves it out. It checks what the torch port of the detector
changed: no mediapipe (nor its jax, opencv, matplotlib) is installed, numpy may be 2.x, and the demo
(detection, fit, synthesis) writes its grid with nothing on stderr.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TORCH = "torch==2.13.0"  # the CPU build: an unpinned torch pulls a multi-GB CUDA build


@pytest.mark.slow
def test_wheel_in_fresh_venv_with_pandas_and_pyarrow(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    for d in ("synth", "fitting", "blendshapes", "render"):
        shutil.copytree(ROOT / d, src / d, ignore=shutil.ignore_patterns("__pycache__", "*.nbi", "*.nbc"))
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                        "-w", str(tmp_path / "dist"), str(src)], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    (wheel,) = (tmp_path / "dist").glob("affectsynth-*.whl")
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    py = env_dir / "bin" / "python"
    for args in ([TORCH], [str(wheel), "pandas", "pyarrow"]):
        r = subprocess.run([str(py), "-m", "pip", "install", "-q", *args], capture_output=True, text=True, timeout=1800)
        assert r.returncode == 0, r.stderr[-3000:]
    r = subprocess.run([str(py), "-m", "pip", "list", "--format=freeze"], capture_output=True, text=True, timeout=120)
    installed = {line.split("==")[0].lower() for line in r.stdout.split()}
    assert not installed & {"mediapipe", "jax", "jaxlib", "opencv-contrib-python", "matplotlib", "sounddevice"}, installed
    r = subprocess.run([str(py), "-c", "import numpy, pandas, pyarrow; print(numpy.__version__)"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    out = tmp_path / "demo"
    env = {**os.environ, "AFFECTSYNTH_NO_PROGRESS": "1"}
    r = subprocess.run([str(env_dir / "bin" / "affectsynth"), "demo", "--out", str(out), "--cell", "96"],
                       capture_output=True, text=True, timeout=900, env=env, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    assert (out / "grid.png").is_file()
    assert r.stderr == "", f"unexpected stderr output: {r.stderr[:2000]}"
