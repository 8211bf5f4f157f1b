"""affectsynth.blendshapes: expression basis, targets -> blendshape weights, 4D builder.

Imports no other affectsynth package; whatever needs the face model's basis receives it
as an argument.
"""

from .basis import BasisError, BlendshapeBasis
from .build import build_expression_library, build_library_from_dir, BuildSettings
from .facs import ARKIT_NAMES, AU_TO_BLENDSHAPES, CATEGORIES, CATEGORY_AUS, SUPPORTED_AUS, au_weights
from .model import ExpressionModel, ModelFileError
from .sequences import Sequence, SequenceError, load_sequences
from .targets import AffectPath, AUs, Expression, TargetError, VA, target_from_dict
from .va import DEFAULT_VA_ANCHORS, AnchorVAModel, BinnedVAModel

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
    "target_from_dict",
]
