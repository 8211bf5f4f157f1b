"""Output verification on a real photo: the same detector and fitter read the output again."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from affectsynth.blendshapes import Expression
from affectsynth.manifest import ManifestRow
from affectsynth.synthesizer import Synthesizer
from affectsynth.verify import VERIFY_AUS, Verification, au_activations, au_similarity, neutral_reference, verify


@pytest.fixture(scope="module")
def synth() -> Synthesizer:
    return Synthesizer()


@pytest.fixture(scope="module")
def face(synth):
    """(192 px face crop of the astronaut, its fit, the neutral reference)."""
    import skimage.data

    img = np.ascontiguousarray(skimage.data.astronaut())
    crop, fit = synth.crop_to_face(img, synth.fit(img)[0], 192)
    return crop, fit, neutral_reference(synth, crop, fit)


def test_au_projection_and_similarity():
    names = ("mouthSmile_L", "mouthSmile_R", "browDown_L", "browDown_R")
    a = au_activations([0.8, 0.8, 0.0, 0.0], names, ("AU12_L", "AU12_R", "AU4"))
    assert a == pytest.approx({"AU12_L": 0.8, "AU12_R": 0.8, "AU4": 0.0})
    t = {"AU12_L": 0.8, "AU4": 0.0}
    assert au_similarity(t, t) == 1.0
    assert au_similarity(t, {"AU12_L": 0.4}) < au_similarity(t, {"AU12_L": 0.7}) < 1.0
    assert au_similarity(t, {"AU12_L": 0.8, "AU4": 0.6}) < 1.0  # an AU not asked for costs
    with pytest.raises(ValueError, match="3 weights for 4 names"):
        au_activations([0.0] * 3, names)
    with pytest.raises(ValueError, match="unknown AU 'AU3'"):
        au_activations([0.0] * 4, names, ("AU3",))


@pytest.mark.slow
@pytest.mark.parametrize("category", ["happiness", "surprise"])
def test_a_real_expression_scores_above_a_neutral_output(synth, face, category):
    crop, fit, ref = face
    target = Expression(category, 1.0)
    shown = synth.synthesize(crop, target, fit=fit)
    neutral = synth.synthesize(crop, Expression("neutral"), fit=fit)
    good = verify(synth, shown, target, reference=ref)
    bad = verify(synth, neutral, target, reference=ref)
    assert good.face_found and bad.face_found
    assert good.score > bad.score + 0.15, (good, bad)
    key = {"happiness": "AU12_L", "surprise": "AU26"}[category]
    assert good.aus[key][1] > 0.3 and bad.aus.get(key, (0, 0))[1] < 0.15  # the AU itself comes back
    assert verify(synth, neutral, Expression("neutral"), reference=ref).score > 0.8  # neutral on neutral


@pytest.mark.slow
def test_row_fields_and_rejection(synth, face):
    crop, fit, ref = face
    target = Expression("happiness", 1.0, "open")
    res = synth.synthesize(crop, target, fit=fit)
    v = verify(synth, res, target, reference=ref)
    row = v.to_row()
    assert set(row) == {"verify_score", "verify_face", "verify_aus"}
    aus = json.loads(row["verify_aus"])
    assert set(aus) <= set(VERIFY_AUS) and aus["AU12_R"][0] == pytest.approx(1.0)
    assert v.rejects(0.0) is None
    assert v.rejects(1.0).startswith(f"verify-low: score {v.score:.3f} < 1")
    with pytest.raises(ValueError, match="min_score"):
        v.rejects(1.5)
    m = ManifestRow("a.jpg", "a/happiness.png", "ok", expression="happiness", variant="open", **row)
    back = ManifestRow.from_csv_dict(m.to_csv_dict())
    assert (back.variant, back.verify_face, back.verify_aus) == ("open", True, row["verify_aus"])
    assert back.verify_score == pytest.approx(row["verify_score"])
    # an output without a face: nothing to read back, rejected with its own reason
    blank = dataclasses.replace(res, image=np.full_like(res.image, 128))
    none = verify(synth, blank, target)
    assert not none.face_found and none.score == 0.0
    assert none.rejects(0.0).startswith("verify-no-face")
    assert ManifestRow.from_csv_dict(ManifestRow("a", "b", "ok", **none.to_row()).to_csv_dict()).verify_face is False
    with pytest.raises(ValueError, match="score must be in"):
        Verification(True, 1.5)
