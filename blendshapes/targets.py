"""Expression targets: what a user asks for (category, valence-arousal, Action Units, paths).

Targets are small frozen dataclasses that validate when built and round-trip through
JSON-safe dicts (``to_dict`` / ``target_from_dict``). An `ExpressionModel` maps them to
blendshape weights.
"""

from __future__ import annotations

import math
import re
import warnings
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Mapping, Sequence, Union

from .facs import CATEGORIES, SUPPORTED_AUS

if TYPE_CHECKING:  # pragma: no cover
    from .model import ExpressionModel

__all__ = [
    "CATEGORIES",
    "Expression",
    "VA",
    "AUs",
    "AffectPath",
    "Target",
    "TargetError",
    "target_from_dict",
]


class TargetError(ValueError):
    """A target was built with a bad value (subclass of ValueError)."""


_VARIANT_NAME = re.compile(r"[a-z0-9][a-z0-9_-]*")


def _real(where: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) and not hasattr(
        value, "__float__"
    ):
        raise TypeError(f"{where}: expected a real number, got {type(value).__name__}")
    out = float(value)
    if not math.isfinite(out):
        raise TargetError(f"{where}: expected a finite number, got {out}")
    return out


@dataclass(frozen=True)
class Expression:
    """A categorical expression at an intensity.

    Args:
        name: one of `CATEGORIES` ("neutral", "happiness", "sadness", "surprise", "fear",
            "anger", "disgust", "contempt").
        intensity: in [0, 1]; 0 is the neutral face, 1 the apex.
        variant: which prototype of the category (EMFACS variants, e.g. anger "closed" or
            "open"; `ExpressionModel.variants` lists a model's). None: the engine draws one
            per output from its seed (`resolve_variant`); `ExpressionModel.weights` uses the
            category's default variant. Checked against the model when it is used.

    Raises:
        TargetError: unknown name, intensity outside [0, 1], or a variant that is not a
            lowercase name (letters, digits, "-", "_").
    """

    name: str
    intensity: float = 1.0
    variant: str | None = None
    kind: str = field(default="expression", init=False, repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str):
            raise TypeError(f"Expression: name must be a str, got {type(self.name).__name__}")
        if self.name not in CATEGORIES:
            raise TargetError(
                f"Expression: name must be one of {CATEGORIES}, got {self.name!r}"
            )
        value = _real("Expression.intensity", self.intensity)
        if not 0.0 <= value <= 1.0:
            raise TargetError(f"Expression: intensity must be in [0, 1], got {value}")
        object.__setattr__(self, "intensity", value)
        if self.variant is not None:
            if not isinstance(self.variant, str):
                raise TypeError(f"Expression: variant must be a str or None, got {type(self.variant).__name__}")
            if not _VARIANT_NAME.fullmatch(self.variant):
                raise TargetError(
                    f"Expression: variant must be a lowercase name (letters, digits, '-', '_'), "
                    f"got {self.variant!r}"
                )

    def with_variant(self, variant: str | None) -> "Expression":
        """The same expression with another variant (a new object)."""
        return Expression(self.name, self.intensity, variant)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict: ``{"kind": "expression", "name": ..., "intensity": ...}``, plus
        ``"variant"`` when one is set."""
        d: dict[str, Any] = {"kind": self.kind, "name": self.name, "intensity": self.intensity}
        if self.variant is not None:
            d["variant"] = self.variant
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Expression":
        """Inverse of `to_dict` (``kind`` and ``variant`` optional)."""
        _check_kind(d, "expression")
        return cls(d["name"], d.get("intensity", 1.0), d.get("variant"))


@dataclass(frozen=True)
class VA:
    """A point in the valence-arousal plane (Russell's circumplex).

    Args:
        valence: in [-1, 1], unpleasant (-1) to pleasant (+1).
        arousal: in [-1, 1], calm (-1) to excited (+1).

    Note:
        Points of the square outside the unit disk are accepted; every model maps them
        as the point on the unit circle in the same direction (radius clamped to 1), see
        `clamped`. The origin is the neutral face.

    Raises:
        TargetError: a coordinate outside [-1, 1] or not finite.
    """

    valence: float
    arousal: float
    kind: str = field(default="va", init=False, repr=False)

    def __post_init__(self) -> None:
        for attr in ("valence", "arousal"):
            value = _real(f"VA.{attr}", getattr(self, attr))
            if not -1.0 <= value <= 1.0:
                raise TargetError(f"VA: {attr} must be in [-1, 1], got {value}")
            object.__setattr__(self, attr, value)

    @property
    def radius(self) -> float:
        """Distance from the origin, before clamping (up to sqrt(2))."""
        return math.hypot(self.valence, self.arousal)

    @property
    def angle(self) -> float:
        """Angle in radians, ``atan2(arousal, valence)`` in (-pi, pi]."""
        return math.atan2(self.arousal, self.valence)

    def clamped(self) -> "VA":
        """The point with its radius clamped to 1 (itself when already inside the disk)."""
        r = self.radius
        if r <= 1.0:
            return self
        return VA(self.valence / r, self.arousal / r)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict: ``{"kind": "va", "valence": ..., "arousal": ...}``."""
        return {"kind": self.kind, "valence": self.valence, "arousal": self.arousal}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "VA":
        """Inverse of `to_dict` (``kind`` optional)."""
        _check_kind(d, "va")
        return cls(d["valence"], d["arousal"])


@dataclass(frozen=True)
class AUs:
    """FACS Action Unit intensities.

    Args:
        units: AU key -> intensity in [0, 1], e.g. ``{"AU12": 0.8, "AU6": 0.5}``; keys from
            `SUPPORTED_AUS` ("AU12" both sides, "AU12_R" the subject's right only).

    Raises:
        TargetError: unknown AU key or intensity outside [0, 1].
    """

    units: Mapping[str, float]
    kind: str = field(default="aus", init=False, repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.units, Mapping):
            raise TypeError(f"AUs: units must be a mapping, got {type(self.units).__name__}")
        clean: dict[str, float] = {}
        for key, value in self.units.items():
            if key not in SUPPORTED_AUS:
                raise TargetError(f"AUs: unknown AU {key!r}; expected one of {SUPPORTED_AUS}")
            v = _real(f"AUs[{key!r}]", value)
            if not 0.0 <= v <= 1.0:
                raise TargetError(f"AUs: {key} intensity must be in [0, 1], got {v}")
            clean[key] = v
        object.__setattr__(self, "units", MappingProxyType(dict(sorted(clean.items()))))

    def __hash__(self) -> int:
        return hash(tuple(self.units.items()))

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict: ``{"kind": "aus", "units": {...}}``."""
        return {"kind": self.kind, "units": dict(self.units)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "AUs":
        """Inverse of `to_dict` (``kind`` optional)."""
        _check_kind(d, "aus")
        return cls(dict(d["units"]))


Target = Union[Expression, VA, AUs]


@dataclass(frozen=True)
class AffectPath:
    """A smooth path through key targets (data; `affectsynth.blendshapes.paths` samples it).

    Args:
        points: two or more `VA` or `Expression` key points (one is allowed: a constant path).
        space: where to interpolate. "va" (default): each key becomes a VA point (an
            `Expression` becomes ``model.expression_va(key)``, where the model's VA map
            shows that category at that intensity), a Catmull-Rom
            spline runs through them in the VA plane, and every sample is mapped through
            the model's VA mapping, so the face moves around the circumplex. "weights":
            each key is mapped to weights by the model and the spline runs through the
            weight vectors (clipped to [0, 1]); key targets are reproduced exactly.

    Note:
        The spline parameter is uniform per segment: sample ``n = m * (len(points) - 1) + 1``
        frames to land exactly on every key point. Catmull-Rom can overshoot between
        keys; VA samples are clipped to [-1, 1] and the radius clamp of `VA` applies.

    Raises:
        TargetError: no points, a point of another type, or an unknown space.
    """

    points: tuple[Union[VA, Expression], ...]
    space: str = "va"
    kind: str = field(default="path", init=False, repr=False)

    def __post_init__(self) -> None:
        pts = tuple(self.points)
        if not pts:
            raise TargetError("AffectPath: expected at least one point, got none")
        for i, p in enumerate(pts):
            if not isinstance(p, (VA, Expression)):
                raise TargetError(
                    f"AffectPath: points[{i}] must be VA or Expression, got {type(p).__name__}"
                )
        if self.space not in ("va", "weights"):
            raise TargetError(f"AffectPath: space must be 'va' or 'weights', got {self.space!r}")
        object.__setattr__(self, "points", pts)

    def sample_targets(self, n: int, *, model: "ExpressionModel | None" = None) -> list[VA]:
        """Deprecated: use `affectsynth.blendshapes.paths.path_va_points`.

        Args:
            n: number of samples, >= 1.
            model: the expression model; default `ExpressionModel.default()`.
        """
        warnings.warn("AffectPath.sample_targets is deprecated; use "
                      "affectsynth.blendshapes.paths.path_va_points", DeprecationWarning, stacklevel=2)
        from .paths import path_va_points  # local: paths imports this module

        return path_va_points(self, n, model=model)

    def sample(self, n: int, *, model: "ExpressionModel | None" = None) -> list[dict[str, float]]:
        """Deprecated: use `affectsynth.blendshapes.paths.sample_path`.

        Args:
            n: number of frames, >= 1.
            model: the expression model; default `ExpressionModel.default()`.
        """
        warnings.warn("AffectPath.sample is deprecated; use affectsynth.blendshapes.paths.sample_path",
                      DeprecationWarning, stacklevel=2)
        from .paths import sample_path  # local: paths imports this module

        return sample_path(self, n, model=model)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict: ``{"kind": "path", "space": ..., "points": [...]}``."""
        return {"kind": self.kind, "space": self.space, "points": [p.to_dict() for p in self.points]}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "AffectPath":
        """Inverse of `to_dict`."""
        _check_kind(d, "path")
        return cls(tuple(target_from_dict(p) for p in d["points"]), d.get("space", "va"))


_KINDS = {"expression": Expression, "va": VA, "aus": AUs, "path": AffectPath}


def _check_kind(d: Mapping[str, Any], kind: str) -> None:
    if not isinstance(d, Mapping):
        raise TypeError(f"from_dict: expected a mapping, got {type(d).__name__}")
    got = d.get("kind", kind)
    if got != kind:
        raise TargetError(f"from_dict: expected kind {kind!r}, got {got!r}")


def target_from_dict(d: Mapping[str, Any]) -> Union[Target, AffectPath]:
    """Build any target from its `to_dict` form, dispatching on ``d["kind"]``.

    Raises:
        TargetError: missing or unknown ``kind``.
    """
    if not isinstance(d, Mapping):
        raise TypeError(f"target_from_dict: expected a mapping, got {type(d).__name__}")
    kind = d.get("kind")
    if kind not in _KINDS:
        raise TargetError(f"target_from_dict: kind must be one of {tuple(_KINDS)}, got {kind!r}")
    return _KINDS[kind].from_dict(d)
