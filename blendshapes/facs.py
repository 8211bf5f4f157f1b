"""FACS Action Units, their ARKit blendshape proxies, and the EMFACS category prototypes.

Sources:
    * Action Units: P. Ekman, W. V. Friesen, J. C. Hager, *Facial Action Coding System*
      (2002 manual); AU names below follow it.
    * AU -> ARKit blendshape table: the FACS table of the ICT-FaceKit README
      (github.com/ICT-VGL/ICT-FaceKit, e.g. AU1 = browInnerUp_L + _R, AU4 = browDown_L + _R,
      AU6 = cheekSquint_L + _R, AU12 = mouthSmile_L + _R) and Apple's ARKit
      ``ARFaceAnchor.BlendShapeLocation`` descriptions for the shapes it leaves out.
    * Category prototypes: EMFACS (Friesen & Ekman, 1983) as summarised in Matsumoto &
      Ekman (2008) and the FACS Investigator's Guide: happiness 6+12, sadness 1+4+15,
      surprise 1+2+5+26, fear 1+2+4+5+7+20+26, anger 4+5+7+23, disgust 9+15+16,
      contempt unilateral R12+R14.

Proxies (no single ARKit shape exists; chosen by looking at the ICT-FaceKit shapes):
    * AU23 lip tightener -> mouthPress_L/R 0.6 + mouthRollLower 0.25 + mouthRollUpper 0.25
      (the red of the lips narrows and presses; ARKit has no "tighten" shape).
    * AU25 lips part -> mouthLowerDown_L/R 0.5 + mouthUpperUp_L/R 0.25 + jawOpen 0.08.
    * AU26 jaw drop -> jawOpen 0.45 (a relaxed drop, not the full opening);
      AU27 mouth stretch -> jawOpen 1.0.
    * AU43/AU45 eyes closed / blink -> eyeBlink_L/R.
    * unilateral AU14 (``AU14_R`` / ``AU14_L``) -> that side's mouthDimple 1.0 + the sideways
      mouth shift toward it (mouthRight / mouthLeft 0.5): one dimpler pulls the mouth off-centre.

Sides: ``_L`` / ``_R`` are the subject's left / right (ICT-FaceKit and ARKit); the
unilateral AU keys ``AU12_R`` etc. use the same convention, so FACS "R12" is ``AU12_R``.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Mapping

__all__ = [
    "ARKIT_NAMES",
    "AU_DESCRIPTIONS",
    "AU_TO_BLENDSHAPES",
    "SUPPORTED_AUS",
    "CATEGORIES",
    "EMFACS_CORE",
    "CATEGORY_AUS",
    "CATEGORY_VARIANTS",
    "DEFAULT_VARIANTS",
    "AU_RESPONSE",
    "au_weights",
]

#: The 53 ARKit blendshape names in ICT-FaceKit order (the ``expression_names`` of its npz).
ARKIT_NAMES: tuple[str, ...] = (
    "browDown_L", "browDown_R", "browInnerUp_L", "browInnerUp_R", "browOuterUp_L",
    "browOuterUp_R", "cheekPuff_L", "cheekPuff_R", "cheekSquint_L", "cheekSquint_R",
    "eyeBlink_L", "eyeBlink_R", "eyeLookDown_L", "eyeLookDown_R", "eyeLookIn_L",
    "eyeLookIn_R", "eyeLookOut_L", "eyeLookOut_R", "eyeLookUp_L", "eyeLookUp_R",
    "eyeSquint_L", "eyeSquint_R", "eyeWide_L", "eyeWide_R", "jawForward", "jawLeft",
    "jawOpen", "jawRight", "mouthClose", "mouthDimple_L", "mouthDimple_R", "mouthFrown_L",
    "mouthFrown_R", "mouthFunnel", "mouthLeft", "mouthLowerDown_L", "mouthLowerDown_R",
    "mouthPress_L", "mouthPress_R", "mouthPucker", "mouthRight", "mouthRollLower",
    "mouthRollUpper", "mouthShrugLower", "mouthShrugUpper", "mouthSmile_L", "mouthSmile_R",
    "mouthStretch_L", "mouthStretch_R", "mouthUpperUp_L", "mouthUpperUp_R", "noseSneer_L",
    "noseSneer_R",
)

#: The expression categories, in this order everywhere (neutral first).
CATEGORIES: tuple[str, ...] = (
    "neutral", "happiness", "sadness", "surprise", "fear", "anger", "disgust", "contempt",
)

AU_DESCRIPTIONS: Mapping[str, str] = MappingProxyType({
    "AU1": "inner brow raiser", "AU2": "outer brow raiser", "AU4": "brow lowerer",
    "AU5": "upper lid raiser", "AU6": "cheek raiser", "AU7": "lid tightener",
    "AU9": "nose wrinkler", "AU10": "upper lip raiser", "AU12": "lip corner puller",
    "AU14": "dimpler", "AU15": "lip corner depressor", "AU16": "lower lip depressor",
    "AU17": "chin raiser", "AU18": "lip pucker", "AU20": "lip stretcher",
    "AU22": "lip funneler", "AU23": "lip tightener", "AU24": "lip pressor",
    "AU25": "lips part", "AU26": "jaw drop", "AU27": "mouth stretch", "AU28": "lip suck",
    "AU29": "jaw thrust", "AU34": "cheek puff", "AU43": "eyes closed", "AU45": "blink",
    "AU61": "eyes turn left", "AU62": "eyes turn right", "AU63": "eyes up",
    "AU64": "eyes down",
})


def _both(shape: str, gain: float = 1.0) -> dict[str, float]:
    return {f"{shape}_L": gain, f"{shape}_R": gain}


_BILATERAL: dict[str, dict[str, float]] = {
    "AU1": _both("browInnerUp"),
    "AU2": _both("browOuterUp"),
    "AU4": _both("browDown"),
    "AU5": _both("eyeWide"),
    "AU6": _both("cheekSquint"),
    "AU7": _both("eyeSquint"),
    "AU9": _both("noseSneer"),
    "AU10": _both("mouthUpperUp"),
    "AU12": _both("mouthSmile"),
    "AU14": _both("mouthDimple"),
    "AU15": _both("mouthFrown"),
    "AU16": _both("mouthLowerDown"),
    "AU20": _both("mouthStretch"),
    "AU23": {**_both("mouthPress", 0.6), "mouthRollLower": 0.25, "mouthRollUpper": 0.25},
    "AU24": _both("mouthPress"),
    "AU25": {**_both("mouthLowerDown", 0.5), **_both("mouthUpperUp", 0.25), "jawOpen": 0.08},
    "AU34": _both("cheekPuff"),
    "AU43": _both("eyeBlink"),
    "AU45": _both("eyeBlink"),
}

_MIDLINE: dict[str, dict[str, float]] = {
    "AU17": {"mouthShrugLower": 1.0},
    "AU18": {"mouthPucker": 1.0},
    "AU22": {"mouthFunnel": 1.0},
    "AU26": {"jawOpen": 0.45},
    "AU27": {"jawOpen": 1.0},
    "AU28": {"mouthRollLower": 1.0, "mouthRollUpper": 1.0},
    "AU29": {"jawForward": 1.0},
    "AU61": {"eyeLookOut_L": 1.0, "eyeLookIn_R": 1.0},
    "AU62": {"eyeLookIn_L": 1.0, "eyeLookOut_R": 1.0},
    "AU63": _both("eyeLookUp"),
    "AU64": _both("eyeLookDown"),
}


#: Unilateral AUs that also pull the whole mouth toward their own side: AU -> gain of the
#: sideways mouth shift (``mouthRight`` for ``AU<n>_R``, ``mouthLeft`` for ``AU<n>_L``; the
#: ICT mouthRight moves the lips toward the subject's right, where mouthSmile_R is). One
#: dimpler alone tightens its corner back and toward its side, dragging the mouth off-centre;
#: the ICT mouthDimple_R moves the lip corner (MediaPipe point 61) 5.7 mm back but only 1.1 mm
#: sideways, too little for the lopsided mouth to show in a 48 px crop, so the shift carries it
#: (mouthRight 1.0 moves the lip centre 13 mm; 0.5 reads as a smirk on the dev photos without
#: tearing the corner, 0.7 pushed the far corner into the cheek outline of a three-quarter
#: face). The bilateral AU pulls both ways at once: no shift. Only contempt uses AU14.
_SIDE_SHIFT: dict[str, float] = {"AU14": 0.5}


def _unilateral(table: Mapping[str, Mapping[str, float]]) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for au, shapes in table.items():
        for side in ("L", "R"):
            # Keep the side's own shapes; midline shapes (jawOpen, mouthRoll*) at half gain.
            out[f"{au}_{side}"] = {
                name: (gain if name.endswith(f"_{side}") else 0.5 * gain)
                for name, gain in shapes.items()
                if name.endswith(f"_{side}") or not name.endswith(("_L", "_R"))
            }
            if au in _SIDE_SHIFT:
                out[f"{au}_{side}"]["mouthRight" if side == "R" else "mouthLeft"] = _SIDE_SHIFT[au]
    return out


_TABLE = {**_BILATERAL, **_MIDLINE, **_unilateral(_BILATERAL)}
for _shapes in _TABLE.values():
    for _name in _shapes:
        if _name not in ARKIT_NAMES:  # pragma: no cover - guards edits of the table
            raise ValueError(f"facs: AU table names unknown blendshape {_name!r}")

#: AU key -> {blendshape name: weight at AU intensity 1}. Keys: "AU<n>" and, for
#: bilateral AUs, "AU<n>_L" / "AU<n>_R" (one side only).
AU_TO_BLENDSHAPES: Mapping[str, Mapping[str, float]] = MappingProxyType(
    {au: MappingProxyType(dict(shapes)) for au, shapes in _TABLE.items()}
)

#: Every AU key accepted by `AUs` targets, sorted by AU number then side.
SUPPORTED_AUS: tuple[str, ...] = tuple(
    sorted(_TABLE, key=lambda k: (int(k[2:].split("_")[0]), k))
)

#: EMFACS core AU sets per category (the cited prototypes, without intensities).
EMFACS_CORE: Mapping[str, tuple[str, ...]] = MappingProxyType({
    "neutral": (),
    "happiness": ("AU6", "AU12"),
    "sadness": ("AU1", "AU4", "AU15"),
    "surprise": ("AU1", "AU2", "AU5", "AU26"),
    "fear": ("AU1", "AU2", "AU4", "AU5", "AU7", "AU20", "AU26"),
    "anger": ("AU4", "AU5", "AU7", "AU23"),
    "disgust": ("AU9", "AU15", "AU16"),
    "contempt": ("AU12_R", "AU14_R"),
})

def _frozen(table: Mapping[str, Mapping[str, Mapping[str, float]]]) -> Mapping[str, Mapping[str, Mapping[str, float]]]:
    return MappingProxyType({c: MappingProxyType({v: MappingProxyType(dict(aus)) for v, aus in vs.items()})
                             for c, vs in table.items()})


#: EMFACS variants per category: category -> variant name -> apex AU intensities, in a
#: fixed order whose FIRST variant is the category's default (what ``Expression(c)`` shows
#: when no variant is asked for, and the prototype the VA model places at the category's
#: anchor, so VA targets stay continuous). Intensities were tuned by eye on the ICT-FaceKit
#: shapes, full size and as 48 px grey crops (scripts/show_expressions.py); additions to the
#: cited EMFACS sets are there to make the apex read at a glance:
#:
#: * happiness "open" 6+12+25+26 (Duchenne smile, lips part, teeth show; a little AU7 for the
#:   lower lids); "closed" 6+12 with the lips together.
#: * sadness "frown" 1+4+15+17 (the EMFACS variant with the chin raiser).
#: * surprise "open" 1+2+5+26 plus AU27 0.2 (the jaw clearly drops); "closed" 1+2+5 with the
#:   lips only just apart (AU25), no jaw drop.
#: * fear "open" 1+2+4+5+20+25+26: the oblique inner-brow raise (AU1 1.0 and AU4 1.0 with only
#:   0.3 of AU2: the inner ends go up and together, the outer ends stay, where surprise lifts the
#:   whole brow into an arch), upper lids up (AU5), lips stretched sideways (AU20 1.0) and only
#:   slightly parted (AU25 0.7, AU26 0.2, AU16 0.2), so the mouth is a wide, tense slit, not
#:   surprise's round drop (with AU2 0.5, AU4 0.8 and a wider opening it read as a weak
#:   surprise); a little AU7.
#: * anger "open" 4+5+7+10+16+25+26 (default): brows down, lids tight, a square mouth baring
#:   the teeth; "closed" 4+5+7+23+24 with AU17 (the variant 4+5+7+17+23+24), AU9/AU10 0.6/0.4
#:   (glabella and nose tension) and AU15 0.3 (the pressed lips turn down: grim, not pursed);
#:   upper lids raised (AU5 0.8) over tightened lower lids (AU7 0.6) for the stare. The closed
#:   one still reads only as "stern" at 48 px: the ICT browDown shape moves the brows little and
#:   there are no glabellar furrows, so the open variant is the default.
#: * disgust "open" 9+10+16+25 (default: nose wrinkle, upper lip raised, lower lip down, teeth
#:   show); "closed" 9+15+16 with AU17 (the chin raiser keeps the lips together).
#: * contempt "right" R12+R14 and "left" L12+L14 (unilateral; the subject's side): a one-sided
#:   smirk/sneer. The dimpler is at the apex (AU14 1.0; its crease at the lip corner is the
#:   wrinkle maps' "lip-corner dimple") and the lip-corner pull below it (AU12 0.8), so the corner
#:   tucks in and up rather than smiling broadly; the same side's upper lip rises a little (R10
#:   0.4: the sneer, and it deepens that side's nasolabial fold), its lip pressor at 0.2 keeps the
#:   lips together under it; the other side stays at rest (pressing it too, L24 0.4, put a lip
#:   highlight on the line between the lips of a neutral photo). R14 also shifts the whole mouth
#:   toward the raised corner (mouthRight 0.5, see `_SIDE_SHIFT`): without it the corner moved
#:   too little and the face read as a lopsided half-smile in a 48 px crop. With R12 1.0 + R14
#:   1.0 + R24 0.4 it read as a weak half-smile, nearly neutral in a 48 px crop. No head tilt or
#:   gaze: the pose stays the photo's.
CATEGORY_VARIANTS: Mapping[str, Mapping[str, Mapping[str, float]]] = _frozen({
    "neutral": {"rest": {}},
    "happiness": {
        "open": {"AU6": 1.0, "AU7": 0.3, "AU12": 1.0, "AU25": 0.9, "AU26": 0.12},
        "closed": {"AU6": 1.0, "AU7": 0.3, "AU12": 1.0},
    },
    "sadness": {"frown": {"AU1": 1.0, "AU4": 0.7, "AU15": 1.0, "AU17": 0.5}},
    "surprise": {
        "open": {"AU1": 1.0, "AU2": 1.0, "AU5": 1.0, "AU26": 1.0, "AU27": 0.2},
        "closed": {"AU1": 1.0, "AU2": 1.0, "AU5": 1.0, "AU25": 0.2},
    },
    "fear": {
        "open": {"AU1": 1.0, "AU2": 0.3, "AU4": 1.0, "AU5": 1.0, "AU7": 0.2, "AU16": 0.2, "AU20": 1.0,
                 "AU25": 0.7, "AU26": 0.2},
    },
    "anger": {
        "open": {"AU4": 1.0, "AU5": 0.4, "AU7": 1.0, "AU9": 0.3, "AU10": 0.8, "AU16": 0.6,
                 "AU25": 0.8, "AU26": 0.3},
        "closed": {"AU4": 1.0, "AU5": 0.8, "AU7": 0.6, "AU9": 0.6, "AU10": 0.4, "AU15": 0.3, "AU17": 0.8,
                   "AU23": 1.0, "AU24": 1.0},
    },
    "disgust": {
        "open": {"AU9": 1.0, "AU10": 0.8, "AU16": 0.5, "AU25": 0.5},
        "closed": {"AU9": 1.0, "AU15": 1.0, "AU16": 0.2, "AU17": 0.4},
    },
    "contempt": {
        "right": {"AU10_R": 0.4, "AU12_R": 0.8, "AU14_R": 1.0, "AU24_R": 0.2},
        "left": {"AU10_L": 0.4, "AU12_L": 0.8, "AU14_L": 1.0, "AU24_L": 0.2},
    },
})

#: Category -> its default variant (the first of `CATEGORY_VARIANTS`).
DEFAULT_VARIANTS: Mapping[str, str] = MappingProxyType({c: next(iter(v)) for c, v in CATEGORY_VARIANTS.items()})

#: Apex AU intensities of each category's default variant (``CATEGORY_VARIANTS[c][DEFAULT_VARIANTS[c]]``).
CATEGORY_AUS: Mapping[str, Mapping[str, float]] = MappingProxyType(
    {c: CATEGORY_VARIANTS[c][DEFAULT_VARIANTS[c]] for c in CATEGORIES}
)

#: Per-AU intensity response ``k`` of ``f_k(i) = i * (1 + k - k * i)`` (f(0) = 0, f(1) = 1,
#: monotone for k in [0, 1]). k > 0 front-loads the AU, so intensity 0.5 already shows
#: (1 + k) / 2 of the apex; jaw AUs stay closer to linear so mild expressions keep the
#: mouth nearly closed. AUs not listed use the default 0.6.
AU_RESPONSE: Mapping[str, float] = MappingProxyType({
    "default": 0.6, "AU6": 0.7, "AU12": 0.7, "AU1": 0.7, "AU4": 0.7, "AU9": 0.7,
    "AU25": 0.3, "AU26": 0.2, "AU27": 0.0, "AU20": 0.5,
})


def au_weights(units: Mapping[str, float]) -> dict[str, float]:
    """Map AU intensities to ARKit blendshape weights with the table above.

    Args:
        units: AU key (see `SUPPORTED_AUS`) -> intensity in [0, 1].

    Returns:
        Blendshape name -> weight in [0, 1] for all of `ARKIT_NAMES`:
        ``min(1, sum_au units[au] * gain[au, shape])``.

    Raises:
        ValueError: an unknown AU key or an intensity outside [0, 1].
    """
    out = dict.fromkeys(ARKIT_NAMES, 0.0)
    for au, value in units.items():
        if au not in AU_TO_BLENDSHAPES:
            raise ValueError(f"au_weights: unknown AU {au!r}; expected one of {SUPPORTED_AUS}")
        value = float(value)
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"au_weights: {au} intensity must be in [0, 1], got {value}")
        for name, gain in AU_TO_BLENDSHAPES[au].items():
            out[name] += value * gain
    return {name: min(1.0, w) for name, w in out.items()}
