"""The target-weight policy's numpy path (float32 CPU, no grad) against its torch path: the same floats."""

from __future__ import annotations

import torch

from affectsynth.fitting import FaceModel
from affectsynth.weights import ADDITIVE_SHAPES, output_weights


def test_numpy_path_gives_the_torch_paths_floats():
    """Random weights with zeros, NaNs and values beyond [0, 1]: bitwise the torch path's result
    (forced by a fitted tensor that requires grad), and the eyelid releases happen."""
    names = FaceModel.default().expression_names
    kept = torch.tensor([n in ADDITIVE_SHAPES or i % 3 == 0 for i, n in enumerate(names)])
    g = torch.Generator().manual_seed(0)
    for i in range(300):
        target = torch.rand(len(names), generator=g) * 1.2 - 0.1
        fitted = torch.rand(len(names), generator=g) * 1.2 - 0.1
        target[torch.rand(len(names), generator=g) < 0.3] = 0.0
        if i % 10 == 0:
            target[i % len(names)] = float("nan")
        fast = output_weights(target, fitted, kept, names)
        slow = output_weights(target, fitted.clone().requires_grad_(True), kept, names)
        assert fast.dtype == torch.float32 and fast.shape == target.shape and fast.grad_fn is None
        assert fast.numpy().tobytes() == slow.detach().numpy().tobytes()
    wide, squint = names.index("eyeWide_L"), names.index("eyeSquint_L")
    target, fitted = torch.zeros(len(names)), torch.zeros(len(names))
    target[wide], fitted[squint] = 1.0, 0.5
    out = output_weights(target, fitted, kept, names)
    assert out[squint] == 0.0 and out[wide] == 1.0  # a target that widens the eyes releases the squint
