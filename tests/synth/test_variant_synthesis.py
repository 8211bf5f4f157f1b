"""Expression variants through the Synthesizer: drawn from the seed, kept when fixed, labelled."""

from __future__ import annotations

import numpy as np
import pytest

from affectsynth.blendshapes import Expression
from affectsynth.manifest import ManifestRow
from affectsynth.synthesizer import Synthesizer


@pytest.fixture(scope="module")
def synth() -> Synthesizer:
    return Synthesizer()


def test_variant_drawn_from_the_seed(synth):
    t = Expression("anger", 0.8)
    draws = [synth.resolve_target(t, seed).variant for seed in range(40)]
    assert draws == [synth.resolve_target(t, seed).variant for seed in range(40)]  # reproducible
    assert set(draws) == set(synth.expressions.variants("anger"))  # every variant gets drawn
    assert synth.resolve_target(t, None).variant == synth.expressions.default_variant("anger")
    fixed = Expression("anger", 0.8, variant="closed")
    assert {synth.resolve_target(fixed, seed).variant for seed in range(20)} == {"closed"}
    with pytest.raises(ValueError, match=r"no variant 'wide'.*\('open', 'closed'\)"):
        synth.resolve_target(Expression("anger", 0.8, "wide"), 0)


@pytest.mark.slow
def test_synthesis_shows_and_labels_the_variant(synth):
    import skimage.data

    img = np.ascontiguousarray(skimage.data.astronaut())
    photo, fit = synth.crop_to_face(img, synth.fit(img)[0], 160)
    seed = next(s for s in range(40) if synth.resolve_target(Expression("anger", 0.8), s).variant == "closed")
    drawn = synth.synthesize(photo, Expression("anger", 0.8), fit=fit, rng_seed=seed)
    fixed = synth.synthesize(photo, Expression("anger", 0.8, "closed"), fit=fit, rng_seed=seed + 1)
    other = synth.synthesize(photo, Expression("anger", 0.8, "open"), fit=fit, rng_seed=seed)
    assert drawn.labels.target.variant == fixed.labels.target.variant == "closed"
    assert other.labels.target.variant == "open"
    np.testing.assert_array_equal(drawn.image, fixed.image)  # same variant, same face
    assert np.abs(drawn.image.astype(int) - other.image.astype(int)).max() > 40  # the open mouth shows
    assert drawn.labels.weights.get("mouthPress_L", 0) > 0.3 > other.labels.weights.get("mouthPress_L", 0)
    # the label's VA is where the model's own VA map shows this expression
    assert (drawn.labels.target.valence, drawn.labels.target.arousal) == pytest.approx(
        synth.expressions.expression_va(Expression("anger", 0.8)))
    row = ManifestRow("a.jpg", "a.png", "ok", **drawn.labels.to_row())
    assert ManifestRow.from_csv_dict(row.to_csv_dict()).variant == "closed"
