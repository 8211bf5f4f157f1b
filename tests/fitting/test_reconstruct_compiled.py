"""`FaceModel.reconstruct`'s compiled CPU pass against its torch path, on a real fit (the astronaut)
and the expression targets `generate --expressions all` renders."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from affectsynth.blendshapes import CATEGORIES, Expression
from affectsynth.synthesizer import Synthesizer


@pytest.fixture(scope="module")
def fitted():
    import skimage.data

    synth = Synthesizer()
    image = np.ascontiguousarray(skimage.data.astronaut())
    return synth, synth.fit(image)[0]


def _torch_path(model, fit, expression):
    """The differentiable path: the same weights, requiring grad."""
    with torch.enable_grad():
        return model.reconstruct(fit, expression=expression.clone().requires_grad_(True)).detach()


@pytest.mark.parametrize("category", CATEGORIES)
def test_compiled_reconstruct_matches_the_torch_path(fitted, category):
    synth, fit = fitted
    weights = synth.target_weights(Expression(category), fit)
    fast = synth.model.reconstruct(fit, expression=weights)
    assert fast.grad_fn is None and fast.shape == (synth.model.num_vertices, 3)
    slow = _torch_path(synth.model, fit, weights)
    # the expression moves the mesh by millimetres to centimetres: a dropped blendshape would show
    neutral = synth.model.reconstruct(fit, neutral=True)
    if category != "neutral":
        assert float((slow - neutral).abs().max()) > 0.1
    torch.testing.assert_close(fast, slow, rtol=0, atol=1e-4)  # cm, coordinates ~50 cm: float32 rounding


def test_compiled_reconstruct_of_the_fitted_and_neutral_expressions(fitted):
    synth, fit = fitted
    model = synth.model
    torch.testing.assert_close(model.reconstruct(fit), _torch_path(model, fit, fit.expression), rtol=0, atol=1e-4)
    torch.testing.assert_close(model.reconstruct(fit, neutral=True), _torch_path(model, fit, torch.zeros_like(fit.expression)),
                               rtol=0, atol=1e-4)
