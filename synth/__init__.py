"""affectsynth: synthesise labelled facial expressions of the same person from photos.

The names below load lazily (PEP 562), so ``import affectsynth`` and ``affectsynth --help`` stay fast and
``import affectsynth.render`` never loads mediapipe or the face model.

Example:
    >>> from affectsynth import Synthesizer, Expression   # doctest: +SKIP
    >>> out = Synthesizer().synthesize(photo, Expression("happiness", 0.8))   # doctest: +SKIP
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "Synthesizer": "affectsynth.synthesizer",
    "SynthSettings": "affectsynth.synthesizer",
    "SynthResult": "affectsynth.result",
    "SynthLabels": "affectsynth.result",
    "AffectAugment": "affectsynth.transform",
    "AffectAugmentedImageFolder": "affectsynth.dataset",
    "AffectAugmentedDataset": "affectsynth.dataset",
    "LabelPreset": "affectsynth.labels",
    "load_image": "affectsynth.images",
    "Expression": "affectsynth.blendshapes",
    "VA": "affectsynth.blendshapes",
    "AUs": "affectsynth.blendshapes",
    "AffectPath": "affectsynth.blendshapes",
    "ExpressionModel": "affectsynth.blendshapes",
}

__all__ = [
    "AUs",
    "AffectAugment",
    "AffectAugmentedDataset",
    "AffectAugmentedImageFolder",
    "AffectPath",
    "Expression",
    "ExpressionModel",
    "LabelPreset",
    "SynthLabels",
    "SynthResult",
    "SynthSettings",
    "Synthesizer",
    "VA",
    "__version__",
    "load_image",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'affectsynth' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
