"""Label presets in a dataset's own index space (ImageFolder's class_to_idx, a Hugging Face ClassLabel)."""

from __future__ import annotations

import pytest

from affectsynth.blendshapes.targets import Expression
from affectsynth.labels import LabelPreset, UnsupportedTargetError
from affectsynth.transform import AffectAugment


def test_preset_from_class_to_idx_maps_into_the_datasets_indices():
    """ImageFolder over happy/neutral/sad gives {0, 1, 2}: a rewritten label must be one of those, not FER2013's."""
    preset = LabelPreset.from_class_to_idx({"happy": 0, "neutral": 1, "sad": 2})
    assert preset.class_names == ("happy", "neutral", "sad") and preset.kind == "class"
    aug = AffectAugment(("happiness", "sadness", "neutral"), label_preset=preset)
    assert [aug.rewrite_label(5, Expression(c)) for c in ("happiness", "neutral", "sadness")] == [0, 1, 2]
    shuffled = LabelPreset.from_class_to_idx({"Sad": 0, "HAPPY": 1})  # any order, any case
    assert shuffled.index_of("happiness") == 1 and shuffled.index_of("sadness") == 0


def test_target_without_a_class_is_refused():
    preset = LabelPreset.from_class_to_idx({"happy": 0, "neutral": 1, "sad": 2})
    with pytest.raises(UnsupportedTargetError, match="no class for 'surprise'.*happy, neutral, sad"):
        AffectAugment(("happiness", "surprise"), label_preset=preset)
    with pytest.raises(UnsupportedTargetError, match="class indices"):
        AffectAugment("va", label_preset=preset)


@pytest.mark.parametrize("mapping,needle", [
    ({"happy": 0, "sad": 2}, "0..N-1"),
    ({"happy": 1, "sad": 1}, "0..N-1"),
    ({}, "0..N-1"),
    ({"happy": 0, "other": 1}, r"\['other'\]"),
    ({"happy": 0, "joy": 1}, "several classes"),
])
def test_bad_class_to_idx_says_what_is_wrong(mapping, needle):
    with pytest.raises(ValueError, match=needle):
        LabelPreset.from_class_to_idx(mapping)


def test_aliases_name_unknown_classes():
    preset = LabelPreset.from_class_to_idx({"0_grin": 0, "1_frown": 1}, aliases={"0_grin": "happy", "1_frown": "anger"})
    assert preset.categories == ("happiness", "anger")


class _ClassLabel:
    """The part of datasets.ClassLabel a preset reads: ``names`` (index -> class name)."""

    def __init__(self, names):
        self.names = names


def test_preset_from_class_label():
    preset = LabelPreset.from_class_label(_ClassLabel(["angry", "happy", "neutral"]))
    assert preset.index_of("happiness") == 1 and "angry" in preset.name
    with pytest.raises(TypeError, match="ClassLabel"):
        LabelPreset.from_class_label({"names": 3})


def test_preset_from_a_real_class_label():
    datasets = pytest.importorskip("datasets", reason="needs Hugging Face datasets (pip install 'affectsynth[integrations]')")
    feature = datasets.ClassLabel(names=["sad", "surprise"])
    assert LabelPreset.from_class_label(feature).index_of("surprise") == 1
