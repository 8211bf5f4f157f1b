"""Output verification: detect and fit the synthesised face again and score how well its target comes back.

After synthesis, the same detector and fitter that read the source photo read the output (a crop
around the face only, which is what makes it cheap: detection and a full fit run on a ``crop_px``
square instead of the photo). The recovered blendshape weights and the target's weights are both
projected onto FACS Action Units (`au_activations`, one number per AU in [0, 1]); the fitter's own
reading of the same face made neutral (`neutral_reference`, once per face) is subtracted from the
recovered AUs, so the fitter's per-person bias does not count as expression; the score is the
weighted Jaccard (Ruzicka) similarity of the two AU vectors (`au_similarity`): 1 when every AU
comes back at its target level and nothing else appears, lower for missing AUs and for AUs that
were not asked for. Opt-in: it costs one detection and one fit per output.

Note:
    Scores are far below 1 even for outputs that read well: the fitter's expression prior pulls
    weights towards 0, it explains some AUs with neighbouring shapes (jaw drop for lips part), and
    AUs it already reads high on the neutral face (eyelid widening, AU5) cannot rise above the
    reference. On the 9 dev faces at intensity 1 (scripts/bench_fidelity.py), category medians
    are 0.17-0.40 against 0.03-0.09 for the same target scored on the neutral output. Compare
    scores between outputs of a category, and pick ``--min-verify`` from that bench (around
    0.1 rejects outputs that show little of their target), not from 1.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from functools import lru_cache
from types import MappingProxyType
from typing import Any, Mapping, Sequence

import numpy as np

from affectsynth.blendshapes.facs import AU_TO_BLENDSHAPES

__all__ = ["VERIFY_AUS", "SIMILARITY_FLOOR", "Verification", "au_activations", "au_similarity", "neutral_reference",
           "read_aus", "verify"]

#: The Action Units scored: every AU of the shipped EMFACS variants (lip corner AUs per side, so
#: unilateral contempt is scored as unilateral).
VERIFY_AUS: tuple[str, ...] = (
    "AU1", "AU2", "AU4", "AU5", "AU6", "AU7", "AU9", "AU10", "AU12_L", "AU12_R", "AU14_L", "AU14_R",
    "AU15", "AU16", "AU17", "AU20", "AU23", "AU24", "AU25", "AU26",
)

#: Added to both sums of `au_similarity`: a neutral target with a little fitting noise is not 0.
SIMILARITY_FLOOR = 0.25


def au_activations(weights: Sequence[float] | np.ndarray, names: Sequence[str],
                   aus: Sequence[str] = VERIFY_AUS) -> dict[str, float]:
    """Project blendshape weights onto Action Units: ``clip((w . g) / (g . g), 0, 1)`` per AU.

    ``g`` is the AU's blendshape gains (`affectsynth.blendshapes.facs.AU_TO_BLENDSHAPES`) over
    ``names``: an AU alone at intensity x gives x. AUs sharing shapes (AU16 and AU25 both lower
    the lower lip) each see the shared motion; applied alike to the target and the recovered
    weights, that cancels in `au_similarity`.

    Args:
        weights: [S] blendshape weights in ``names`` order.
        names: the S blendshape names.
        aus: AU keys to project onto (default `VERIFY_AUS`).

    Returns:
        AU key -> activation in [0, 1].

    Raises:
        ValueError: ``weights`` and ``names`` differ in length, or an unknown AU key.

    Example:
        >>> names = ("mouthSmile_L", "mouthSmile_R")
        >>> au_activations([0.8, 0.0], names, ("AU12_L", "AU12_R"))
        {'AU12_L': 0.8, 'AU12_R': 0.0}
    """
    w = np.asarray(weights, dtype=np.float64).reshape(-1)
    if len(w) != len(names):
        raise ValueError(f"au_activations: {len(w)} weights for {len(names)} names")
    out: dict[str, float] = {}
    for au, g, gg in _au_gains(tuple(names), tuple(aus)):
        a = float(w @ g / gg) if gg else 0.0
        out[au] = 0.0 if a < 0.0 else 1.0 if a > 1.0 else a  # clip to [0, 1]; NaN stays NaN
    return out


@lru_cache(maxsize=64)
def _au_gains(names: tuple[str, ...], aus: tuple[str, ...]) -> tuple[tuple[str, np.ndarray, float], ...]:
    """Per AU of `aus`: (key, its blendshape gains over `names` [S], their squared norm), built once
    per (names, aus): every output's labels project onto the same AUs (0.09 -> 0.02 ms a call)."""
    col = {n: i for i, n in enumerate(names)}
    out = []
    for au in aus:
        if au not in AU_TO_BLENDSHAPES:
            raise ValueError(f"au_activations: unknown AU {au!r}")
        g = np.zeros(len(names))
        for shape, gain in AU_TO_BLENDSHAPES[au].items():
            if shape in col:
                g[col[shape]] = gain
        g.setflags(write=False)
        out.append((au, g, float(g @ g)))
    return tuple(out)


def au_similarity(target: Mapping[str, float], recovered: Mapping[str, float], *,
                  floor: float = SIMILARITY_FLOOR) -> float:
    """``(sum min(t, r) + floor) / (sum max(t, r) + floor)`` over the AUs of ``target``: in [0, 1].

    Weighted Jaccard (Ruzicka) similarity with a floor, so identical vectors give 1, a missing AU
    or one that was not asked for lowers the score in proportion to its activation, and a neutral
    target with a little recovered noise stays near 1 rather than 0.

    Args:
        target: AU key -> target activation in [0, 1].
        recovered: AU key -> recovered activation (missing keys count as 0).
        floor: > 0, added to numerator and denominator.

    Example:
        >>> au_similarity({"AU12_L": 0.8, "AU4": 0.0}, {"AU12_L": 0.8, "AU4": 0.0})
        1.0
    """
    if not floor > 0:
        raise ValueError(f"au_similarity: floor must be > 0, got {floor}")
    lo = hi = 0.0
    for au, t in target.items():
        r = float(recovered.get(au, 0.0))
        lo += min(t, r)
        hi += max(t, r)
    return float((lo + floor) / (hi + floor))


@dataclass(frozen=True)
class Verification:
    """How well one output's target comes back when the output is detected and fitted again.

    Attributes:
        face_found: a face was detected in the output's face crop.
        score: `au_similarity` of target and recovered AUs in [0, 1]; 0 when no face was found.
        aus: AU key -> (target activation, recovered activation), the AUs where either is >= 0.05.
    """

    face_found: bool
    score: float
    aus: Mapping[str, tuple[float, float]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not (math.isfinite(self.score) and 0.0 <= self.score <= 1.0):
            raise ValueError(f"Verification: score must be in [0, 1], got {self.score}")
        object.__setattr__(self, "aus", MappingProxyType(dict(self.aus)))

    def to_row(self) -> dict[str, Any]:
        """Manifest fields: ``verify_score`` (4 decimals), ``verify_face``, ``verify_aus`` (compact JSON
        ``{"AU12_L": [target, recovered], ...}``, 3 decimals)."""
        aus = {k: [round(t, 3), round(r, 3)] for k, (t, r) in self.aus.items()}
        return {"verify_score": round(self.score, 4), "verify_face": self.face_found,
                "verify_aus": json.dumps(aus, separators=(",", ":"))}

    def rejects(self, min_score: float) -> str | None:
        """The manifest reason (``<reason>: <detail>``) when this output should be rejected, else None.

        Args:
            min_score: the lowest acceptable `score` (``--min-verify``), in [0, 1].

        Raises:
            ValueError: ``min_score`` outside [0, 1].
        """
        if not 0.0 <= min_score <= 1.0:
            raise ValueError(f"Verification.rejects: min_score must be in [0, 1], got {min_score}")
        if not self.face_found:
            return "verify-no-face: no face detected in the synthesised output"
        if self.score < min_score:
            worst = sorted(self.aus.items(), key=lambda kv: -abs(kv[1][0] - kv[1][1]))[:2]
            detail = ", ".join(f"{k} {t:.2f}->{r:.2f}" for k, (t, r) in worst)
            return f"verify-low: score {self.score:.3f} < {min_score:g} ({detail})"
        return None


def read_aus(synthesizer: Any, image: np.ndarray, fit: Any, *, crop_px: int = 192) -> dict[str, float] | None:
    """Detect and fit the face of ``fit`` again in ``image``; its AU activations, or None if no face.

    Runs the synthesizer's own detector and fitter (full detection and a full fit: no help from
    ``fit``, which only says where to crop) on a ``crop_px`` square around the face, and takes the
    detected face nearest the crop's centre.

    Args:
        synthesizer: an `affectsynth.synthesizer.Synthesizer`.
        image: [H, W, 3] uint8 image holding the face.
        fit: a fit of that face (its box places the crop).
        crop_px: side of the crop that is detected and fitted (>= 64).

    Returns:
        `au_activations` of the recovered weights, or None.
    """
    if crop_px < 64:
        raise ValueError(f"read_aus: crop_px must be >= 64, got {crop_px}")
    crop, _ = synthesizer.crop_to_face(np.asarray(image), fit, crop_px, scale=1.6)
    fits = synthesizer.fit(crop)
    if not fits:
        return None
    c = crop_px / 2

    def off_centre(f: Any) -> float:
        x0, y0, x1, y1 = f.bbox
        return float(np.hypot((x0 + x1) / 2 - c, (y0 + y1) / 2 - c))

    found = min(fits, key=off_centre)
    names = tuple(found.expression_names) or tuple(synthesizer.model.expression_names)
    return au_activations(found.expression.detach().cpu().numpy(), names)


def neutral_reference(synthesizer: Any, image: np.ndarray, fit: Any, *, crop_px: int = 192) -> dict[str, float] | None:
    """What the fitter reads on this face made neutral: the baseline `verify` subtracts.

    The landmark fitter reads some AUs on every face whatever it shows (on the dev photos eyelid
    widening, AU5, and cheek raising, AU6, come back at 0.6-1.0 on neutral outputs). Reading
    the neutral rendition of the same face once, and scoring outputs on what rose above it,
    removes that per-person bias. One synthesis and one `read_aus` per face; reuse the result
    for every target of that face.

    Args:
        synthesizer: an `affectsynth.synthesizer.Synthesizer`.
        image: the source photo (or crop) of the face.
        fit: the face's fit in ``image``.
        crop_px: as in `read_aus`.

    Returns:
        AU key -> activation, or None when no face is found in the neutral rendition.
    """
    from affectsynth.blendshapes.targets import Expression

    neutral = synthesizer.synthesize(image, Expression("neutral"), fit=fit)
    return read_aus(synthesizer, neutral.image, neutral.fit, crop_px=crop_px)


def verify(synthesizer: Any, result: Any, target: Any, *, reference: Mapping[str, float] | None = None,
           crop_px: int = 192) -> Verification:
    """Detect and fit the output face again; score how well ``target``'s AUs come back.

    Cost: one detection and one landmark fit on a ``crop_px`` crop (`read_aus`), plus, once per
    face, the `neutral_reference` when one is passed (recommended).

    Args:
        synthesizer: the `affectsynth.synthesizer.Synthesizer` that made ``result``.
        result: its `SynthResult` (``image``, ``fit`` and the variant in ``labels`` are used).
        target: the target the output should show: `Expression` (variant None: the variant the
            result's labels name), `VA` or `AUs`.
        reference: `neutral_reference` of the same face: the recovered AUs are taken as the rise
            above it (``max(0, r - reference)``). None: absolute recovered AUs, which carry the
            fitter's per-person bias.
        crop_px: side of the face crop that is detected and fitted.

    Returns:
        A `Verification`.

    Example:
        >>> from affectsynth.synthesizer import Synthesizer  # doctest: +SKIP
        >>> s = Synthesizer(); res = s.synthesize(photo, Expression("happiness"), fit=fit)  # doctest: +SKIP
        >>> verify(s, res, Expression("happiness"), reference=neutral_reference(s, photo, fit)).score  # doctest: +SKIP
        0.71
    """
    if getattr(target, "kind", None) == "expression" and target.variant is None:
        shown = getattr(getattr(result, "labels", None), "target", None)
        if shown is not None and shown.expression == target.name and shown.variant:
            target = target.with_variant(shown.variant)
    names = tuple(synthesizer.model.expression_names)
    want = synthesizer.expressions.weights_tensor(target, names, strict=False).cpu().numpy()
    t_aus = au_activations(want, names)
    r_aus = read_aus(synthesizer, result.image, result.fit, crop_px=crop_px)
    if r_aus is None:
        return Verification(False, 0.0, {k: (v, 0.0) for k, v in t_aus.items() if v >= 0.05})
    if reference is not None:
        r_aus = {k: max(0.0, v - float(reference.get(k, 0.0))) for k, v in r_aus.items()}
    aus = {k: (t_aus[k], r_aus[k]) for k in VERIFY_AUS if max(t_aus[k], r_aus[k]) >= 0.05}
    return Verification(True, au_similarity(t_aus, r_aus), aus)
