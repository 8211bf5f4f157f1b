"""Fixtures for affectsynth.blendshapes tests: the embedded ICT-FaceKit basis on a vertex subset."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from affectsynth.blendshapes import BlendshapeBasis, Expression, ExpressionModel, Sequence

FACE_MODEL = Path(__file__).resolve().parents[2] / "fitting" / "data" / "face_model.npz"


@pytest.fixture(scope="session")
def ict():
    """(neutral [V, 3], identity [K, V, 3], basis) of the embedded face model, 2500-vertex subset."""
    if not FACE_MODEL.exists():
        pytest.skip(f"needs {FACE_MODEL} (embedded ICT-FaceKit model); absent")
    with np.load(FACE_MODEL, allow_pickle=False) as d:
        neutral = d["neutral"]
        names = [str(x) for x in d["expression_names"]]
        V = neutral.shape[0]
        idx = np.linspace(0, V - 1, 2500).round().astype(np.int64)
        basis = BlendshapeBasis.from_arrays(names, d["expression_basis"][:, idx])
        return neutral[idx].astype(np.float64), d["identity_basis"][:20, idx].astype(np.float64), basis


@pytest.fixture(scope="session")
def make_sequences():
    """The synthetic 4D sequence generator `_make_sequences` (see its docstring)."""
    return _make_sequences


def _rotation(rng: np.random.Generator, max_deg: float) -> np.ndarray:
    axis = rng.normal(size=3)
    axis /= np.linalg.norm(axis)
    ang = np.radians(rng.uniform(-max_deg, max_deg))
    K = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + np.sin(ang) * K + (1 - np.cos(ang)) * K @ K


def _make_sequences(ict, *, per_category=2, frames=16, noise=0.01, seed=0, with_va=True):
    """Sequences of every non-neutral category: returns (sequences, true apex weights, true frame weights).

    Each: a random identity (20 modes ~ N(0, 1)), onset after 2-5 neutral frames, a
    smoothstep rise over 4-8 frames to the prototype, held; random rigid motion per frame
    (up to 8 degrees, 1.5 cm), Gaussian noise (``noise`` cm). VA per frame = the category's
    anchor times the rise, with +-0.03 jitter.
    """
    neutral, identity, basis = ict
    model = ExpressionModel.default()
    D = basis.deltas.double().numpy()
    rng = np.random.default_rng(seed)
    seqs, truth, frame_w = [], {}, []
    for c in model.categories:
        if c == "neutral":
            continue
        proto = model.weights_tensor(Expression(c), basis.names).double().numpy()
        truth[c] = proto
        anchor = np.array(model.va_anchors[c])
        for k in range(per_category):
            onset = int(rng.integers(2, 6))
            rise = int(rng.integers(4, 9))
            t = np.clip((np.arange(frames) - onset) / rise, 0, 1)
            s = t * t * (3 - 2 * t)
            base = neutral + np.einsum("k,kvc->vc", rng.normal(size=len(identity)), identity)
            W = s[:, None] * proto[None]
            X = base[None] + np.einsum("ts,svc->tvc", W, D)
            out = np.empty_like(X)
            for f in range(frames):
                R = _rotation(rng, 8.0)
                out[f] = X[f] @ R.T + rng.uniform(-1.5, 1.5, size=3)
            out += rng.normal(scale=noise, size=out.shape)
            va = None
            if with_va:
                va = np.clip(s[:, None] * anchor[None] + rng.uniform(-0.03, 0.03, size=(frames, 2)), -1, 1)
                frame_w.append((va, W))
            seqs.append(Sequence(f"{c}_{k}", out.astype(np.float32), c, va))
    return seqs, truth, frame_w
