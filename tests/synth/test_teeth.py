"""The photo's own teeth: which pixels are teeth, and their texture on the model's teeth."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from affectsynth.synthesizer import Synthesizer
from affectsynth.teeth import TeethSettings, teeth_pixels

SKIN = torch.tensor([0.75, 0.55, 0.45])


def _mouth_photo(opening_rows: int, inside: tuple[float, float, float]) -> tuple[torch.Tensor, torch.Tensor]:
    """A 40 x 60 skin-coloured photo with an `opening_rows`-high opening of colour `inside`."""
    photo = SKIN.expand(40, 60, 3).clone()
    opening = torch.zeros(40, 60, dtype=torch.bool)
    opening[20:20 + opening_rows, 10:50] = True
    photo[opening] = torch.tensor(inside)
    return photo, opening


def test_bright_pale_pixels_in_an_open_mouth_are_teeth():
    photo, opening = _mouth_photo(8, (0.9, 0.88, 0.82))
    px = teeth_pixels(photo, opening, SKIN, mouth_width_px=40.0)
    assert px is not None and torch.equal(px, opening)


def test_a_closed_or_dark_mouth_shows_no_teeth():
    thin, thin_mask = _mouth_photo(1, (0.9, 0.88, 0.82))  # a 1-pixel line: lips meeting, not teeth
    assert teeth_pixels(thin, thin_mask, SKIN, mouth_width_px=40.0) is None
    dark, dark_mask = _mouth_photo(10, (0.25, 0.08, 0.07))  # an open mouth's dark cavity
    assert teeth_pixels(dark, dark_mask, SKIN, mouth_width_px=40.0) is None
    lips, lips_mask = _mouth_photo(10, (0.8, 0.45, 0.45))  # saturated red: lips or tongue
    assert teeth_pixels(lips, lips_mask, SKIN, mouth_width_px=40.0) is None


def test_a_tiny_mouth_gets_material_teeth():
    photo, opening = _mouth_photo(8, (0.9, 0.88, 0.82))
    assert teeth_pixels(photo, opening, SKIN, mouth_width_px=40.0) is not None
    assert teeth_pixels(photo, opening, SKIN, mouth_width_px=15.0) is None  # a face of about 40 px


def test_teeth_just_outside_the_detected_contour_count_but_not_a_lip_highlight_apart():
    photo, opening = _mouth_photo(8, (0.9, 0.88, 0.82))
    photo[19, 10:50] = torch.tensor([0.9, 0.88, 0.82])  # teeth 1 px above the contour
    photo[30, 10:50] = torch.tensor([0.95, 0.93, 0.9])  # a highlight 2 px below, skin between
    px = teeth_pixels(photo, opening, SKIN, mouth_width_px=40.0, settings=TeethSettings(grow=0.1))
    assert px is not None and bool(px[19, 10:50].all()) and not bool(px[30].any())


def test_teeth_pixels_rejects_a_mask_of_another_size():
    photo, _ = _mouth_photo(8, (0.9, 0.88, 0.82))
    with pytest.raises(ValueError, match=r"teeth_pixels: opening must be \[40, 60\] bool"):
        teeth_pixels(photo, torch.zeros(10, 10, dtype=torch.bool), SKIN, mouth_width_px=40.0)


def test_settings_validate_when_built():
    with pytest.raises(ValueError, match="min_fraction"):
        TeethSettings(min_fraction=2.0)


@pytest.fixture(scope="module")
def astronaut():
    import skimage.data

    synth = Synthesizer()
    image = np.ascontiguousarray(skimage.data.astronaut())
    fit = synth.fit(image)[0]
    return synth, image, fit


def test_a_smiling_photo_gets_its_teeth(astronaut):
    synth, image, fit = astronaut
    prepared = synth.prepare(image, fit)
    assert prepared.teeth is not None and float(prepared.teeth.weight.max()) > 0.5
    assert float(prepared.teeth.color.mean()) > float(prepared.skin_color.mean())  # teeth are paler than skin


BALD = Path(__file__).resolve().parents[3] / "shared" / "assets" / "dev-photos" / "bald_guys.jpg"


@pytest.mark.skipif(not BALD.exists(), reason="needs the shared dev photo bald_guys.jpg (../shared/assets)")
def test_a_closed_mouth_photo_gets_no_teeth():
    from PIL import Image

    synth = Synthesizer()
    image = np.asarray(Image.open(BALD).convert("RGB"))
    fit = synth.fit(image)[5]  # a neutral face, lips closed
    crop, cfit = synth.crop_to_face(image, fit, 256)
    assert synth.prepare(crop, cfit).teeth is None
