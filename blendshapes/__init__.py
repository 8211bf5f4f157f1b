"""affectsynth.blendshapes: expression basis, targets -> blendshape weights, 4D builder.

Imports no other affectsynth package; whatever needs the face model's basis receives it
as an argument. Names load lazily (PEP 562): ``from affectsynth.blendshapes.facs import
CATEGORIES`` or ``affectsynth.blendshapes.targets`` import neither torch nor the model.
"""

from __future__ import annotations

import importlib
from typing import Any

#: Public name -> the submodule defining it.
_LAZY: dict[str, str] = {
    "BasisError": "basis", "BlendshapeBasis": "basis",
    "BuildSettings": "build", "build_expression_library": "build", "build_library_from_dir": "build",
    "ARKIT_NAMES": "facs", "AU_TO_BLENDSHAPES": "facs", "CATEGORIES": "facs", "CATEGORY_AUS": "facs",
    "CATEGORY_VARIANTS": "facs", "DEFAULT_VARIANTS": "facs", "SUPPORTED_AUS": "facs", "au_weights": "facs",
    "ExpressionModel": "model", "ModelFileError": "model", "resolve_variant": "model",
    "path_va_points": "paths", "sample_path": "paths",
    "Sequence": "sequences", "SequenceError": "sequences", "load_sequences": "sequences",
    "AffectPath": "targets", "AUs": "targets", "Expression": "targets", "TargetError": "targets",
    "VA": "targets", "target_from_dict": "targets",
    "DEFAULT_VA_ANCHORS": "va", "AnchorVAModel": "va", "BinnedVAModel": "va",
}

__all__ = [
    "ARKIT_NAMES",
    "AU_TO_BLENDSHAPES",
    "AUs",
    "AffectPath",
    "AnchorVAModel",
    "BasisError",
    "BinnedVAModel",
    "BlendshapeBasis",
    "BuildSettings",
    "CATEGORIES",
    "CATEGORY_AUS",
    "CATEGORY_VARIANTS",
    "DEFAULT_VARIANTS",
    "DEFAULT_VA_ANCHORS",
    "Expression",
    "ExpressionModel",
    "ModelFileError",
    "SUPPORTED_AUS",
    "Sequence",
    "SequenceError",
    "TargetError",
    "VA",
    "au_weights",
    "build_expression_library",
    "build_library_from_dir",
    "load_sequences",
    "path_va_points",
    "resolve_variant",
    "sample_path",
    "target_from_dict",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'affectsynth.blendshapes' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
