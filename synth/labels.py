"""Label orders of common facial-expression datasets, and how our targets map into them.

Our categories (``affectsynth.blendshapes`` `CATEGORIES`): neutral, happiness, sadness,
surprise, fear, anger, disgust, contempt. A :class:`LabelPreset` gives a dataset's class order;
``index(target)`` maps an expression target to the dataset's class index:

* ``"fer2013"``: FER2013's 7 classes, indices 0..6 = angry, disgust, fear, happy, sad,
  surprise, neutral (contempt has no class: such targets are refused).
* ``"affectnet"``: AffectNet's 8 classes, indices 0..7 = neutral, happy, sad, surprise, fear,
  disgust, anger, contempt.
* ``"va"``: a (valence, arousal) pair of floats in [-1, 1], for any target whose synthesis
  labels carry valence/arousal.

This module also parses the command line's target options (``--expressions``,
``--intensity``, ``--va``, ``--va-grid``, ``--va-wheel``) into target objects.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

from affectsynth.blendshapes.facs import CATEGORIES  # the one list; facs imports no torch

__all__ = [
    "CATEGORIES",
    "CATEGORY_ALIASES",
    "LabelPreset",
    "PRESETS",
    "UnsupportedTargetError",
    "canonical_category",
    "expression_targets",
    "get_preset",
    "parse_float_list",
    "parse_va",
    "va_grid_points",
    "va_wheel_points",
]

#: Other spellings (dataset class names, adjectives) -> our category names.
CATEGORY_ALIASES: dict[str, str] = {
    **{c: c for c in CATEGORIES},
    "neutrality": "neutral", "calm": "neutral",
    "happy": "happiness", "joy": "happiness", "smile": "happiness",
    "sad": "sadness", "sorrow": "sadness",
    "surprised": "surprise",
    "fearful": "fear", "afraid": "fear", "scared": "fear",
    "angry": "anger", "mad": "anger",
    "disgusted": "disgust",
    "contemptuous": "contempt",
}


class UnsupportedTargetError(ValueError):
    """A label preset cannot express a target (e.g. contempt in FER2013)."""


def canonical_category(name: str) -> str:
    """Map a category name or alias (case-insensitive) to our category name.

    Example:
        >>> canonical_category("Happy")
        'happiness'

    Raises:
        ValueError: unknown name; the message lists the accepted ones.
    """
    if not isinstance(name, str):
        raise TypeError(f"canonical_category: expected a str, got {type(name).__name__}")
    key = name.strip().lower()
    if key not in CATEGORY_ALIASES:
        raise ValueError(f"unknown expression {name!r}; expected one of {', '.join(CATEGORIES)} "
                         "(or aliases such as happy, sad, angry)")
    return CATEGORY_ALIASES[key]


@dataclass(frozen=True)
class LabelPreset:
    """A dataset's label convention.

    Args:
        name: preset name ("fer2013", "affectnet", "va").
        class_names: the dataset's own class names in index order (empty for "va").
        categories: our category name for each index (same length as ``class_names``).
        kind: "class" (an int index per sample) or "va" (a float pair per sample).
    """

    name: str
    class_names: tuple[str, ...]
    categories: tuple[str, ...]
    kind: str = "class"

    def __post_init__(self) -> None:
        if self.kind not in ("class", "va"):
            raise ValueError(f"LabelPreset: kind must be 'class' or 'va', got {self.kind!r}")
        if len(self.class_names) != len(self.categories):
            raise ValueError(f"LabelPreset: {len(self.class_names)} class names but "
                             f"{len(self.categories)} categories")
        for c in self.categories:
            if c not in CATEGORIES:
                raise ValueError(f"LabelPreset: unknown category {c!r}")

    @property
    def num_classes(self) -> int:
        """Number of classes (0 for "va")."""
        return len(self.class_names)

    def index_of(self, category: str) -> int:
        """Class index of one of our categories (aliases accepted).

        Raises:
            UnsupportedTargetError: the preset has no such class, or is a VA preset.
        """
        if self.kind != "class":
            raise UnsupportedTargetError(f"label preset {self.name!r} has no class indices")
        cat = canonical_category(category)
        if cat not in self.categories:
            raise UnsupportedTargetError(
                f"label preset {self.name!r} has no class for {cat!r} (classes: "
                f"{', '.join(self.class_names)}); drop that target"
                + (" or use label_preset='affectnet'" if self.name == "fer2013" else ""))
        return self.categories.index(cat)

    def class_to_idx(self, folder_names: Iterable[str]) -> dict[str, int]:
        """Map dataset folder names (class names or our aliases) to this preset's indices.

        Raises:
            UnsupportedTargetError: a folder name is no known category, or has no class here.
        """
        return {f: self.index_of(f) for f in folder_names}

    @classmethod
    def from_class_to_idx(cls, class_to_idx: Mapping[str, int], *, aliases: Mapping[str, str] | None = None,
                          name: str = "class_to_idx") -> "LabelPreset":
        """A class preset in a dataset's own index space (torchvision ``ImageFolder.class_to_idx``).

        Each class name is matched to one of our categories (case-insensitive, through
        `CATEGORY_ALIASES`, or ``aliases`` first), so that a rewritten label is the index the
        dataset itself uses for that expression: an ``ImageFolder`` over folders ``happy, neutral,
        sad`` gets ``{happiness: 0, neutral: 1, sadness: 2}``, never another dataset's order.

        Args:
            class_to_idx: class name -> index; the indices must be 0..N-1, each once.
            aliases: extra class name -> category name (one of `CATEGORIES`) for names we do not
                know, e.g. ``{"joy_face": "happiness"}``.
            name: the preset's name (shown in errors).

        Returns:
            A preset with ``class_names`` in index order; a target without a class here is refused
            with `UnsupportedTargetError` (by `index_of` / `check_target`, and so by
            ``AffectAugment`` at construction).

        Raises:
            ValueError: indices not 0..N-1, two classes with one category, or a class name that
                is no known category (the message lists them).

        Example:
            >>> p = LabelPreset.from_class_to_idx({"happy": 0, "neutral": 1, "sad": 2})
            >>> p.index_of("happiness"), p.index_of("sad")
            (0, 2)
        """
        items = sorted(((int(i), str(c)) for c, i in dict(class_to_idx).items()))
        if [i for i, _ in items] != list(range(len(items))) or not items:
            raise ValueError(f"LabelPreset.from_class_to_idx: indices must be 0..N-1, each once, got "
                             f"{dict(class_to_idx)!r}")
        extra = {k.strip().lower(): v for k, v in (aliases or {}).items()}
        cats, unknown = [], []
        for _, c in items:
            key = c.strip().lower()
            cat = CATEGORY_ALIASES.get(extra.get(key, key).strip().lower())
            if cat is None:
                unknown.append(c)
            cats.append(cat)
        if unknown:
            raise ValueError(f"LabelPreset.from_class_to_idx: classes {unknown} are no expression we know; "
                             f"expected names such as {', '.join(CATEGORIES)} (or aliases: happy, sad, angry, ...); "
                             "map the others with aliases={'name': 'happiness', ...}")
        dup = sorted({c for c in cats if cats.count(c) > 1})
        if dup:
            raise ValueError(f"LabelPreset.from_class_to_idx: several classes mean {dup} in {dict(class_to_idx)!r}; "
                             "one class per category")
        return cls(name, tuple(c for _, c in items), tuple(cats))

    @classmethod
    def from_class_label(cls, feature: Any, *, aliases: Mapping[str, str] | None = None) -> "LabelPreset":
        """A class preset in the index space of a Hugging Face ``datasets.ClassLabel`` feature.

        Args:
            feature: a ``ClassLabel`` (anything with a ``names`` list: index -> class name), e.g.
                ``ds.features["label"]``.
            aliases: as in `from_class_to_idx`.

        Raises:
            TypeError: ``feature`` has no ``names``.
            ValueError: as `from_class_to_idx`.
        """
        names = getattr(feature, "names", None)
        if not isinstance(names, (list, tuple)) or not all(isinstance(n, str) for n in names):
            raise TypeError(f"LabelPreset.from_class_label: expected a datasets.ClassLabel (with .names), "
                            f"got {type(feature).__name__}")
        return cls.from_class_to_idx({n: i for i, n in enumerate(names)}, aliases=aliases,
                                     name=f"ClassLabel({', '.join(names)})")

    def disagreements(self, class_to_idx: Mapping[str, int]) -> list[str]:
        """Where a dataset's ``class_to_idx`` and this preset give a class different indices.

        Returns:
            One ``"'happy': dataset 0, preset 3"`` line per class that disagrees (preset None: a
            class this preset does not have); empty when the two index spaces are the same.
        """
        wrong = []
        for name, idx in class_to_idx.items():
            cat = CATEGORY_ALIASES.get(str(name).strip().lower())
            ours = self.categories.index(cat) if cat in self.categories else None
            if ours != idx:
                wrong.append(f"{name!r}: dataset {idx}, preset {ours}")
        return wrong

    def check_target(self, target: Any) -> None:
        """Raise :class:`UnsupportedTargetError` unless this preset can label ``target``.

        Class presets take expression targets whose category they have; "va" takes expression
        and VA targets (the synthesis labels carry valence/arousal for both).
        """
        kind = getattr(target, "kind", None)
        if self.kind == "va":
            if kind not in ("expression", "va"):
                raise UnsupportedTargetError(
                    f"label preset 'va' cannot label a {kind!r} target; use expression or VA targets")
            return
        if kind != "expression":
            raise UnsupportedTargetError(
                f"label preset {self.name!r} gives class indices and cannot label a {kind!r} target; "
                "use label_preset='va' for VA targets")
        self.index_of(target.name)


PRESETS: dict[str, LabelPreset] = {
    "fer2013": LabelPreset(
        "fer2013",
        ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"),
        ("anger", "disgust", "fear", "happiness", "sadness", "surprise", "neutral"),
    ),
    "affectnet": LabelPreset(
        "affectnet",
        ("neutral", "happy", "sad", "surprise", "fear", "disgust", "anger", "contempt"),
        ("neutral", "happiness", "sadness", "surprise", "fear", "disgust", "anger", "contempt"),
    ),
    "va": LabelPreset("va", (), (), kind="va"),
}


def get_preset(name: str | LabelPreset) -> LabelPreset:
    """Look up a preset by name ("fer2013", "affectnet", "va"), or pass one through."""
    if isinstance(name, LabelPreset):
        return name
    if not isinstance(name, str) or name.lower() not in PRESETS:
        raise ValueError(f"label preset: expected one of {', '.join(PRESETS)}, got {name!r}")
    return PRESETS[name.lower()]


# --------------------------------------------------------------------------- target options

def parse_float_list(text: str | Sequence[str], *, what: str) -> list[float]:
    """Parse "0.5,1.0" (or several such strings) into floats.

    Raises:
        ValueError: an empty item or a non-number, naming ``what``.
    """
    parts: list[str] = []
    for chunk in ([text] if isinstance(text, str) else list(text)):
        parts.extend(chunk.split(","))
    out = []
    for p in parts:
        p = p.strip()
        if not p:
            raise ValueError(f"{what}: empty value in {text!r}; write comma-separated numbers like 0.5,1.0")
        try:
            v = float(p)
        except ValueError:
            raise ValueError(f"{what}: {p!r} is not a number") from None
        if not math.isfinite(v):
            raise ValueError(f"{what}: {p!r} is not a finite number")
        out.append(v)
    return out


def parse_va(text: str) -> tuple[float, float]:
    """Parse "V,A" into a (valence, arousal) pair, each in [-1, 1].

    Raises:
        ValueError: not two numbers, or outside [-1, 1].
    """
    vals = parse_float_list(text, what="--va")
    if len(vals) != 2:
        raise ValueError(f"--va: expected V,A (two numbers, e.g. --va=0.5,-0.25), got {text!r}")
    for name, v in zip(("valence", "arousal"), vals):
        if not -1.0 <= v <= 1.0:
            raise ValueError(f"--va: {name} must be in [-1, 1], got {v} in {text!r}")
    return vals[0], vals[1]


def expression_targets(names: Sequence[str], intensities: Sequence[float] = (1.0,)) -> list:
    """Every expression at every intensity, as ``affectsynth.blendshapes`` `Expression` targets.

    Order: expressions in the given order, intensities inner. Duplicates are dropped.
    """
    from affectsynth.blendshapes.targets import Expression

    out, seen = [], set()
    for n in names:
        cat = canonical_category(n)
        for i in intensities:
            t = Expression(cat, float(i))
            if t not in seen:
                seen.add(t)
                out.append(t)
    return out


def va_grid_points(n: int) -> list[tuple[float, float]]:
    """The ``--va-grid N`` points: an N x N lattice over [-1, 1]^2, projected into the unit disc.

    Lattice points outside the unit disc are moved radially onto the unit circle (where every
    expression model maps them anyway), so the corners become (+-0.71, +-0.71). Row-major with
    arousal descending, valence ascending. N = 1 gives the origin (neutral).

    Example:
        >>> va_grid_points(3)[4]
        (0.0, 0.0)
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"--va-grid: N must be an integer >= 1, got {n!r}")
    if n == 1:
        return [(0.0, 0.0)]
    ticks = [-1.0 + 2.0 * k / (n - 1) for k in range(n)]
    out = []
    for a in reversed(ticks):
        for v in ticks:
            r = math.hypot(v, a)
            if r > 1.0:
                out.append((v / r, a / r))
            else:
                out.append((round(v, 6), round(a, 6)))
    return out


def va_wheel_points(n: int, *, radius: float = 1.0) -> list[tuple[float, float]]:
    """N points evenly spaced on the VA circle, starting at (radius, 0) (pleasant), counter-clockwise.

    Example:
        >>> va_wheel_points(4)
        [(1.0, 0.0), (0.0, 1.0), (-1.0, 0.0), (-0.0, -1.0)]
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"--va-wheel: N must be an integer >= 1, got {n!r}")
    if not 0.0 < radius <= 1.0:
        raise ValueError(f"va_wheel_points: radius must be in (0, 1], got {radius}")
    return [(round(radius * math.cos(2 * math.pi * k / n), 6), round(radius * math.sin(2 * math.pi * k / n), 6))
            for k in range(n)]
