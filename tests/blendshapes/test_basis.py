from __future__ import annotations

import numpy as np
import pytest
import torch

from affectsynth.blendshapes import BasisError, BlendshapeBasis


def _basis(S=4, V=10, seed=0):
    g = torch.Generator().manual_seed(seed)
    return BlendshapeBasis(tuple(f"s{i}" for i in range(S)), torch.randn(S, V, 3, generator=g))


def test_validation():
    with pytest.raises(BasisError, match=r"\[S=2, V, 3\]"):
        BlendshapeBasis(("a", "b"), torch.zeros(3, 5, 3))
    with pytest.raises(BasisError, match="float32"):
        BlendshapeBasis(("a",), torch.zeros(1, 5, 3, dtype=torch.float64))
    with pytest.raises(BasisError, match="duplicates"):
        BlendshapeBasis(("a", "a"), torch.zeros(2, 5, 3))
    with pytest.raises(TypeError):
        BlendshapeBasis(("a",), np.zeros((1, 5, 3), np.float32))


def test_apply_matches_reference_batched_and_single():
    b = _basis()
    v = torch.randn(2, 10, 3)
    w = torch.rand(2, 4)
    ref = v + (w[:, :, None, None] * b.deltas[None]).sum(1)
    torch.testing.assert_close(b.apply(v, w), ref)
    torch.testing.assert_close(b.apply(v[0], w[0]), ref[0])
    assert b.apply(v[0], w).shape == (2, 10, 3)  # batched weights broadcast the mesh
    assert b.apply(v.double(), w).dtype == torch.float64
    with pytest.raises(BasisError, match="vertices must be"):
        b.apply(torch.zeros(9, 3), w[0])
    with pytest.raises(BasisError, match="weights must be"):
        b.apply(v, torch.zeros(2, 5))


def test_weights_roundtrip_and_index():
    b = _basis()
    t = b.weights_tensor({"s1": 0.5, "s3": 1.0})
    assert t.tolist() == [0.0, 0.5, 0.0, 1.0]
    assert b.weights_dict(t) == {"s0": 0.0, "s1": 0.5, "s2": 0.0, "s3": 1.0}
    assert b.index("s2") == 2 and b.num_shapes == 4 and b.num_vertices == 10
    with pytest.raises(KeyError, match="unknown blendshape 'x'"):
        b.weights_tensor({"x": 1.0})
    assert b.weights_tensor({"x": 1.0}, strict=False).abs().sum() == 0


def test_subsets_and_from_arrays():
    b = _basis()
    s = b.subset_vertices([3, 1])
    torch.testing.assert_close(s.deltas, b.deltas[:, [3, 1]])
    with pytest.raises(BasisError, match="indices must be in"):
        b.subset_vertices([10])
    c = BlendshapeBasis.from_arrays(["a", "b"], np.ones((2, 3, 3)))
    assert c.deltas.dtype == torch.float32
    assert b.subset_shapes(["s2", "s0"]).names == ("s2", "s0")
    assert b.to("cpu").deltas.device.type == "cpu"
