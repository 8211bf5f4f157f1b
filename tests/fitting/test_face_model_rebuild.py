"""A rebuild of the embedded face model from the shared assets gives the committed model and notices.

`scripts/build_face_model.py`, run as its docstring says, writes into a temporary folder; its arrays are
compared with `fitting/data/face_model.npz` one by one: bit for bit, except the photo-calibrated
MediaPipe embedding and two contour-band rows, which the committed model's history fixes (the script's
docstring, "Reproducing the committed model"):

- ``mediapipe_triangle`` / ``mediapipe_barycentric`` were calibrated on MediaPipe's own detections
  (mediapipe 0.10.21) with the fitter of that time; the torch port's landmarks and today's fitter
  move the calibrated points by 0.08 mm on average (95% within 0.2 mm, inner-lip point 311 by 2.0 mm)
  and 40 of the 468 points onto a neighbouring triangle, at the same calibration error (2.547 against
  2.557 % of the inter-ocular distance). The test bounds the points' displacement (mean 0.2 mm,
  95th percentile 0.5 mm, max 3 mm): one calibration round fewer is off by 0.28 mm on average, the
  uncalibrated registration by 1.6 mm.
- the chin rows of the contour bands (iBUG 8, MediaPipe 152) keep, among exactly tied mirror twins,
  the order numpy 1.26's AVX-512 argsort gave; the script now breaks those ties by vertex id, so
  those rows may hold the other twin of a pair, and nothing else.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "build_face_model.py"
COMMITTED = ROOT / "fitting" / "data"
SHARED = ROOT.parent / "shared" / "assets"

CALIBRATED = ("mediapipe_triangle", "mediapipe_barycentric")
CONTOUR_BANDS = ("ibug68_contour_bands", "mediapipe_contour_bands")
NOTICES = ("LICENSE-ICT-FaceKit", "LICENSE-MediaPipe")


def _asset(name: str) -> Path:
    path = SHARED / name
    if not path.is_dir():
        pytest.skip(f"needs ../shared/assets/{name} to rebuild the face model; absent at {path}")
    return path


@pytest.fixture(scope="module")
def rebuilt(tmp_path_factory) -> Path:
    """Folder of a fresh build: the docstring's command with --out in a temporary folder."""
    ict, mediapipe, photos = _asset("ict-facekit"), _asset("mediapipe-canonical"), _asset("dev-photos")
    out = tmp_path_factory.mktemp("rebuilt") / "face_model.npz"
    cmd = [sys.executable, str(SCRIPT), "--ict", str(ict), "--mediapipe", str(mediapipe),
           "--calibration-photos", str(photos), "--out", str(out)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-4000:]
    return out.parent


@pytest.fixture(scope="module")
def models(rebuilt) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """(committed, rebuilt) arrays by name, in file order."""
    with np.load(COMMITTED / "face_model.npz") as a, np.load(rebuilt / "face_model.npz") as b:
        return {n: a[n] for n in a.files}, {n: b[n] for n in b.files}


def _build_script():
    sys.path.insert(0, str(SCRIPT.parent))
    try:
        import build_face_model
    finally:
        sys.path.remove(str(SCRIPT.parent))
    return build_face_model


def test_rebuild_has_the_committed_arrays(models):
    committed, rebuilt = models
    assert list(rebuilt) == list(committed)
    for name in committed:
        assert (rebuilt[name].dtype, rebuilt[name].shape) == (committed[name].dtype, committed[name].shape), name


def test_rebuild_reproduces_the_committed_arrays_bit_for_bit(models):
    committed, rebuilt = models
    for name in committed:
        if name in CALIBRATED + CONTOUR_BANDS:
            continue
        assert rebuilt[name].tobytes() == committed[name].tobytes(), name


def test_contour_bands_differ_at_most_by_tied_mirror_twins(models):
    committed, rebuilt = models
    neutral, symmetry = committed["neutral"], committed["symmetry"]
    for name in CONTOUR_BANDS:
        a, b = committed[name], rebuilt[name]
        assert np.array_equal(a < 0, b < 0), name  # same bands, same candidate counts
        diff = a != b
        twin_a, twin_b = a[diff], b[diff]
        assert np.array_equal(symmetry[twin_a], twin_b), name
        # a twin pair ties exactly on a vertical band: same height and depth, mirrored x
        assert np.array_equal(neutral[twin_a, 1:], neutral[twin_b, 1:]), name
        assert np.array_equal(neutral[twin_a, 0], -neutral[twin_b, 0]), name


def test_calibrated_mediapipe_embedding_stays_where_the_committed_one_is(models):
    committed, rebuilt = models

    def points(m):
        return (m["neutral"][m["triangles"][m["mediapipe_triangle"]]] * m["mediapipe_barycentric"][..., None]).sum(1)

    moved_mm = np.linalg.norm(points(rebuilt) - points(committed), axis=1) * 10.0
    assert moved_mm.mean() < 0.2 and np.percentile(moved_mm, 95) < 0.5 and moved_mm.max() < 3.0, (
        f"mean {moved_mm.mean():.3f} mm, p95 {np.percentile(moved_mm, 95):.3f} mm, "
        f"max {moved_mm.max():.3f} mm (point {int(moved_mm.argmax())})"
    )
    np.testing.assert_allclose(rebuilt["mediapipe_barycentric"].sum(1), 1.0, atol=1e-6)


def test_rebuild_writes_the_committed_licence_notices(rebuilt):
    for name in NOTICES:
        assert (rebuilt / name).read_bytes() == (COMMITTED / name).read_bytes(), name
    # the MediaPipe notice ends with MediaPipe's licence, verbatim
    licence = (SHARED / "mediapipe-canonical" / "LICENSE").read_bytes()
    assert (COMMITTED / "LICENSE-MediaPipe").read_bytes().endswith(licence)


def test_contour_band_ties_do_not_depend_on_candidate_order():
    """Exactly tied mirror twins on a vertical band: the same candidates are kept, in the same order,
    whatever order the face's vertices come in (no shared assets needed)."""
    build = _build_script()
    heights = np.repeat(-np.arange(2.0, 6.0, 0.2), 2)  # 20 pairs of twins inside the band
    xs = np.tile([-0.1, 0.1], len(heights) // 2)
    neutral = np.stack([xs, heights, np.zeros_like(xs)], 1).astype(np.float32)
    anchor, centre = np.array([[0.0, -6.0, 0.0]], np.float32), np.zeros(3)
    results = set()
    for seed in range(8):
        face_vertices = np.random.default_rng(seed).permutation(len(neutral))
        bands = build._contour_bands(neutral, face_vertices, anchor, centre, max_candidates=15)
        assert (bands >= 0).all()
        results.add(tuple(bands[0].tolist()))
    assert len(results) == 1
