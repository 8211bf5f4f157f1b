"""What synthesis returns: the image, and labels typed so that they cannot drift from the face.

`TargetLabels` is the one place where a target becomes label fields (the manifest's target
columns, a grid's column text, the transform's new label); `SynthLabels` adds what synthesis
measured on the output face (final weights, pose, landmarks) and writes the manifest's fields
with `to_row`.
"""

from __future__ import annotations

import functools
import json
import warnings
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Callable, Mapping

import numpy as np

__all__ = ["SynthLabels", "SynthResult", "TargetLabels", "landmarks_json"]


def _mapping_free_state(obj: Any) -> dict:
    """Pickle state of a frozen dataclass with read-only mapping fields (mappingproxy does not pickle)."""
    return {k: dict(v) if isinstance(v, MappingProxyType) else v for k, v in obj.__dict__.items()}


def _set_mapping_state(obj: Any, state: dict) -> None:
    for k, v in state.items():
        object.__setattr__(obj, k, MappingProxyType(v) if isinstance(v, dict) else v)


@dataclass(frozen=True)
class TargetLabels:
    """The label fields of one target, before synthesis.

    Attributes:
        kind: "expression", "va" or "aus".
        expression: the category for expression targets, else "".
        intensity: the expression's intensity in [0, 1], else None.
        variant: the expression variant shown (EMFACS prototype), else None.
        valence, arousal: where the expression model puts this target in the valence-arousal
            plane (a VA target clamped to the unit disk; an expression at its intensity); None
            for AU targets, which the model places nowhere.
        aus: AU key -> intensity for AU targets, else None.
    """

    kind: str
    expression: str = ""
    intensity: float | None = None
    variant: str | None = None
    valence: float | None = None
    arousal: float | None = None
    aus: Mapping[str, float] | None = None

    @classmethod
    def of(cls, target: Any, expression_va: Callable[[Any], tuple[float, float]] | None = None) -> "TargetLabels":
        """Label fields of an `Expression`, `VA` or `AUs` target.

        Args:
            target: the target.
            expression_va: the expression model's map from an `Expression` to its (valence,
                arousal); without it expression targets carry no VA label.

        Raises:
            TypeError: ``target`` is not a target.
        """
        kind = getattr(target, "kind", None)
        if kind == "expression":
            v, a = expression_va(target) if expression_va is not None else (None, None)
            return cls("expression", target.name, float(target.intensity), getattr(target, "variant", None),
                       None if v is None else float(v), None if a is None else float(a))
        if kind == "va":
            c = target.clamped()
            return cls("va", valence=float(c.valence), arousal=float(c.arousal))
        if kind == "aus":
            return cls("aus", aus=MappingProxyType(dict(target.units)))
        raise TypeError(f"TargetLabels.of: target must be Expression, VA or AUs, got {type(target).__name__}")

    def text(self) -> str:
        """Short human text: ``happiness 1.0``, ``V+0.50 A-0.25``, ``AU12 0.8 AU6 0.5``."""
        if self.kind == "expression":
            return f"{self.expression} {self.intensity:.2g}" + (f" {self.variant}" if self.variant else "")
        if self.kind == "va":
            return f"V{self.valence:+.2f} A{self.arousal:+.2f}"
        return " ".join(f"{k} {v:.1f}" for k, v in (self.aus or {}).items())

    def to_row(self) -> dict[str, Any]:
        """The manifest's target fields (``target_kind, expression, intensity, valence, arousal, variant, aus``;
        ``aus`` as compact JSON, empty for other targets)."""
        aus = "" if self.aus is None else json.dumps(dict(self.aus), separators=(",", ":"))
        return {"target_kind": self.kind, "expression": self.expression, "intensity": self.intensity,
                "valence": self.valence, "arousal": self.arousal, "variant": self.variant or "", "aus": aus}

    __getstate__ = _mapping_free_state  # picklable (DataLoader workers, spawn)
    __setstate__ = _set_mapping_state

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict."""
        return {"target_kind": self.kind, "expression": self.expression, "intensity": self.intensity,
                "variant": self.variant, "valence": self.valence, "arousal": self.arousal,
                "aus": None if self.aus is None else dict(self.aus)}


@dataclass(frozen=True, eq=False)
class SynthLabels:
    """Labels of one synthesised face.

    Attributes:
        target: the target's label fields.
        weights: blendshape name -> final weight of the output face (weights under 1e-4
            omitted, rounded to 5 decimals): the target's weights after the photo's own eyelid,
            sideways mouth and undriven shapes were kept (see `affectsynth.weights`).
        pose_deg: (yaw, pitch, roll) of the output face in degrees (see `affectsynth.fitting.FaceFit`).
        head_rotation_deg: (yaw, pitch) extra head rotation applied, degrees ((0, 0) = none).
        lighting: (azimuth_deg, strength) of the relighting applied, or None.
        landmarks: [468, 2] float64 MediaPipe-layout points of the output face, pixels of the
            output image (rounded to 0.01 px).
        frozen: names of the blendshapes no category of the expression model drives (e.g.
            jawForward, jawLeft, mouthPucker, mouthShrugUpper): they keep the photo's fitted
            values in every output, whatever the target (`affectsynth.weights.kept_shapes`,
            without `affectsynth.weights.ADDITIVE_SHAPES`, the eyelids and the sideways mouth
            shift, which the target adds to rather than leaves as they were).
    """

    target: TargetLabels
    weights: Mapping[str, float]
    pose_deg: tuple[float, float, float]
    head_rotation_deg: tuple[float, float] = (0.0, 0.0)
    lighting: tuple[float, float] | None = None
    landmarks: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)), repr=False)
    frozen: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "weights", MappingProxyType(dict(self.weights)))
        object.__setattr__(self, "frozen", tuple(self.frozen))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SynthLabels) and self.to_dict() == other.to_dict()

    __hash__ = None  # type: ignore[assignment]  # holds an array: not hashable
    __getstate__ = _mapping_free_state  # picklable (DataLoader workers, spawn)
    __setstate__ = _set_mapping_state

    def au_activations(self) -> dict[str, float]:
        """FACS Action Unit -> activation in [0, 1] implied by the final ``weights``.

        The projection `affectsynth.verify.au_activations` (over `affectsynth.verify.VERIFY_AUS`,
        the same one verification scores with), so that a label and a verification agree on
        what an AU is; absent blendshapes count as 0.
        """
        from affectsynth.verify import au_activations

        order, known = _arkit_names()
        names = list(order) + [n for n in self.weights if n not in known]
        return au_activations([float(self.weights.get(n, 0.0)) for n in names], names)

    @property
    def face_box(self) -> tuple[float, float, float, float] | None:
        """(x0, y0, x1, y1) box of the output face in the output image, pixels: the extent of its
        ``landmarks`` (the detector's box rule), so it follows a turned head; None without landmarks."""
        pts = np.asarray(self.landmarks, dtype=np.float64).reshape(-1, 2)
        if len(pts) == 0:
            return None
        return (float(pts[:, 0].min()), float(pts[:, 1].min()), float(pts[:, 0].max()), float(pts[:, 1].max()))

    def to_row(self) -> dict[str, Any]:
        """The manifest fields these labels fill: target fields, pose, weights, the head rotation
        and relighting applied, the AU activations (non-zero ones, 3 decimals, compact JSON) and
        the landmarks (compact JSON ``[[x, y], ...]``, 0.01 px, output pixels)."""
        from affectsynth.manifest import ManifestRow

        yaw, pitch, roll = self.pose_deg
        aus = {k: r for k, v in self.au_activations().items() if (r := round(v, 3)) != 0.0}
        light = self.lighting if self.lighting is not None else (None, None)
        return {**self.target.to_row(), "yaw": yaw, "pitch": pitch, "roll": roll,
                "weights": ManifestRow.weights_json(self.weights),
                "head_rotation_yaw": float(self.head_rotation_deg[0]),
                "head_rotation_pitch": float(self.head_rotation_deg[1]),
                "light_azimuth": light[0], "light_strength": light[1],
                "au_activations": json.dumps(aus, separators=(",", ":")),
                "landmarks": landmarks_json(self.landmarks)}

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict of every field (the layout the labels dict of earlier versions had)."""
        yaw, pitch, roll = self.pose_deg
        return {**self.target.to_dict(), "weights": dict(self.weights),
                "pose_deg": {"yaw": yaw, "pitch": pitch, "roll": roll},
                "head_rotation_deg": {"yaw": self.head_rotation_deg[0], "pitch": self.head_rotation_deg[1]},
                "lighting": None if self.lighting is None else {"azimuth_deg": self.lighting[0],
                                                                 "strength": self.lighting[1]},
                "landmarks": np.asarray(self.landmarks).tolist(), "frozen": list(self.frozen)}

    def __getitem__(self, key: str) -> Any:
        """Deprecated dict access (``labels["weights"]``): use the attributes or `to_dict`."""
        warnings.warn("SynthLabels[...] is deprecated: use attributes (labels.weights, labels.target.valence) "
                      "or labels.to_dict()", DeprecationWarning, stacklevel=2)
        return self.to_dict()[key]


@functools.cache
def _arkit_names() -> tuple[tuple[str, ...], frozenset[str]]:
    """ARKit's blendshape names in order, and as a set for membership tests (imported on first use)."""
    from affectsynth.blendshapes.facs import ARKIT_NAMES

    return ARKIT_NAMES, frozenset(ARKIT_NAMES)


def landmarks_json(landmarks: Any) -> str:
    """The manifest's landmarks field: compact JSON ``[[x, y], ...]`` of the points rounded to 0.01 px
    (``json.dumps(points.round(2).tolist(), separators=(",", ":"))``), "" without points.

    Written by a compiled loop from the points in hundredths (~0.01 ms instead of json's 0.2 ms
    for 468 points, byte-identical: a double nearest to k/100 prints as k/100's shortest
    decimal); json itself for non-finite or huge coordinates, which print otherwise.
    """
    pts = np.asarray(landmarks, dtype=np.float64).reshape(-1, 2)
    if len(pts) == 0:
        return ""
    hundredths = np.rint(pts * 100.0)  # what ndarray.round(2) divides by 100
    if not np.isfinite(hundredths).all() or np.abs(hundredths).max() >= _MAX_PRINTED_HUNDREDTHS:
        return json.dumps(pts.round(2).tolist(), separators=(",", ":"))
    return _points_json_writer()(hundredths).tobytes().decode("ascii")


#: |k| below which k/100 prints in fixed notation with its integer part exact in int64 (repr
#: switches to exponents at 1e16)
_MAX_PRINTED_HUNDREDTHS = 1e17


@functools.cache
def _points_json_writer() -> Callable[[np.ndarray], np.ndarray]:
    """`_write_points_json` compiled (numba imported on first use: it is slow to import)."""
    from numba import njit  # noqa: PLC0415

    return njit(cache=True)(_write_points_json)


def _write_points_json(hundredths: np.ndarray) -> np.ndarray:
    """ASCII bytes of ``[[x,y],...]`` for [N, 2] points given in whole hundredths (float64, finite,
    |k| < 1e17), each printed as repr(k / 100): sign (also of -0.0), integer part, ".", the
    hundredths without trailing zeros but at least one digit."""
    n = hundredths.shape[0]
    out = np.empty(n * 2 * 24 + 2 * n + 2, dtype=np.uint8)
    digits = np.empty(20, dtype=np.uint8)
    pos = 0
    out[pos] = 91  # [
    pos += 1
    for i in range(n):
        if i:
            out[pos] = 44  # ,
            pos += 1
        out[pos] = 91
        pos += 1
        for j in range(2):
            if j:
                out[pos] = 44
                pos += 1
            k = hundredths[i, j]
            if np.signbit(k):
                out[pos] = 45  # -
                pos += 1
            a = np.int64(abs(k))
            whole, frac = a // 100, a % 100
            nd = 0
            while True:
                digits[nd] = 48 + whole % 10
                nd += 1
                whole //= 10
                if whole == 0:
                    break
            for d in range(nd - 1, -1, -1):
                out[pos] = digits[d]
                pos += 1
            out[pos] = 46  # .
            out[pos + 1] = 48 + frac // 10
            pos += 2
            if frac % 10:
                out[pos] = 48 + frac % 10
                pos += 1
        out[pos] = 93  # ]
        pos += 1
    out[pos] = 93
    return out[:pos + 1]


@dataclass(frozen=True, repr=False)
class SynthResult:
    """One synthesised image and its labels.

    Attributes:
        image: [H, W, 3] uint8, the input's size.
        labels: `SynthLabels` of the output face.
        fit: the output face as a fit (same identity and camera; new expression and pose).
    """

    image: np.ndarray
    labels: SynthLabels
    fit: Any

    def __repr__(self) -> str:
        return (f"SynthResult(image={list(self.image.shape)} {self.image.dtype}, "
                f"target={self.labels.target.text()!r}, pose_deg={tuple(round(a, 1) for a in self.labels.pose_deg)})")
