"""Affect sequences: frames of one photo's face along a valence-arousal path or through categories.

The functional core of ``affectsynth animate``. A sequence is planned first (`plan_path_frames`,
`plan_category_frames`: one `FrameTarget` per frame, pure and cheap), then rendered (`animate`).
Everything random is drawn once per sequence, so frames do not flicker: one fit and one texture
(the synthesizer's cache), one expression variant per category, one extra head rotation and one
relighting (when the synthesizer's settings enable them). Consecutive frames differ only where
the expression moves; outside the face's motion margin every frame is the input photo.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterator, Mapping, Sequence

import numpy as np

from affectsynth.blendshapes.targets import AffectPath, Expression, VA

if TYPE_CHECKING:  # pragma: no cover
    from affectsynth.blendshapes import ExpressionModel
    from affectsynth.fitting import FaceFit
    from affectsynth.result import SynthLabels, SynthResult
    from affectsynth.synthesizer import Synthesizer

__all__ = [
    "FRAME_COLUMNS",
    "Frame",
    "FrameTarget",
    "SequenceDraws",
    "animate",
    "circle_path",
    "envelope",
    "plan_category_frames",
    "plan_path_frames",
    "render_frame",
    "sequence_draws",
    "sequence_variants",
    "sway_angles",
]

#: Columns of an animation's frame manifest (``frames.csv``), in order.
FRAME_COLUMNS: tuple[str, ...] = (
    "frame", "time_s", "file", "target_kind", "expression", "intensity", "variant", "valence", "arousal",
    "aus", "yaw", "pitch", "roll", "head_yaw", "head_pitch", "weights", "landmarks",
)


@dataclass(frozen=True)
class FrameTarget:
    """One planned frame of a sequence.

    Attributes:
        index: frame number, from 0.
        time_s: time of the frame in seconds (``index / fps``).
        target: the frame's `VA` point or `Expression` (category, intensity).
        sway_deg: (yaw, pitch) head sway of this frame in degrees, added to the sequence's
            drawn head rotation; (0, 0) without sway.
    """

    index: int
    time_s: float
    target: VA | Expression
    sway_deg: tuple[float, float] = (0.0, 0.0)


@dataclass(frozen=True, eq=False)
class Frame:
    """One rendered frame and its labels.

    Attributes:
        index: frame number, from 0.
        time_s: time in seconds.
        image: [H, W, 3] uint8 RGB.
        labels: the synthesised face's `SynthLabels` (target, final weights, pose, head
            rotation, landmarks in pixels of ``image``).
    """

    index: int
    time_s: float
    image: np.ndarray
    labels: "SynthLabels"

    def to_row(self, file: str = "") -> dict[str, Any]:
        """The frame's manifest row (keys `FRAME_COLUMNS`; landmarks and weights as JSON).

        Args:
            file: the frame's image file relative to the manifest ("" when frames go into one video).
        """
        lab = self.labels
        t = lab.target
        yaw, pitch, roll = lab.pose_deg
        return {
            "frame": self.index, "time_s": round(self.time_s, 6), "file": file, "target_kind": t.kind,
            "expression": t.expression, "intensity": t.intensity, "variant": t.variant or "",
            "valence": t.valence, "arousal": t.arousal,
            "aus": t.to_row()["aus"],
            "yaw": round(yaw, 4), "pitch": round(pitch, 4), "roll": round(roll, 4),
            "head_yaw": round(lab.head_rotation_deg[0], 4), "head_pitch": round(lab.head_rotation_deg[1], 4),
            "weights": json.dumps({k: round(float(v), 4) for k, v in lab.weights.items()}, separators=(",", ":")),
            "landmarks": json.dumps(np.asarray(lab.landmarks).round(2).tolist(), separators=(",", ":")),
        }


# --------------------------------------------------------------------------- planning

def _check_frames(n: int, fps: float, where: str) -> None:
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"{where}: frames must be an int >= 1, got {n!r}")
    if not (isinstance(fps, (int, float)) and math.isfinite(fps) and fps > 0):
        raise ValueError(f"{where}: fps must be a finite number > 0, got {fps!r}")


def sway_angles(n: int, amplitude_deg: tuple[float, float]) -> list[tuple[float, float]]:
    """A small periodic head sway: yaw ``A_y sin(2 pi u)``, pitch ``A_p sin(4 pi u)`` over u in [0, 1).

    One yaw swing and two nods per sequence; frame n would land on frame 0 again, so a looping
    video has no jump. Zero amplitude gives (0, 0) everywhere.

    Args:
        n: number of frames, >= 1.
        amplitude_deg: (max |yaw|, max |pitch|) in degrees, each in [0, 30].

    Returns:
        n (yaw, pitch) pairs in degrees.

    Example:
        >>> sway_angles(4, (4.0, 0.0))[1]
        (4.0, 0.0)
    """
    ay, ap = (float(a) for a in amplitude_deg)
    if not (0.0 <= ay <= 30.0 and 0.0 <= ap <= 30.0):
        raise ValueError(f"sway_angles: amplitudes must be in [0, 30] degrees, got {amplitude_deg}")
    out = []
    for j in range(n):
        u = j / n
        out.append((round(ay * math.sin(2 * math.pi * u), 6) + 0.0, round(ap * math.sin(4 * math.pi * u), 6) + 0.0))  # no -0.0
    return out


def circle_path(radius: float = 1.0, keys: int = 8) -> AffectPath:
    """A closed path once round the VA circle counter-clockwise from (radius, 0) (pleasant).

    Args:
        radius: in (0, 1].
        keys: key points on the circle (the last key repeats the first), >= 3.

    Example:
        >>> circle_path(keys=4).points[1]
        VA(valence=0.0, arousal=1.0)
    """
    if not 0.0 < radius <= 1.0:
        raise ValueError(f"circle_path: radius must be in (0, 1], got {radius}")
    if isinstance(keys, bool) or not isinstance(keys, int) or keys < 3:
        raise ValueError(f"circle_path: keys must be an int >= 3, got {keys!r}")
    pts = [VA(round(radius * math.cos(2 * math.pi * k / keys), 6), round(radius * math.sin(2 * math.pi * k / keys), 6))
           for k in range(keys)]
    return AffectPath(tuple(pts) + (pts[0],))


def _closed_va_points(keys: list[list[float]], n: int) -> list[VA]:
    # periodic Catmull-Rom: the keys before the first and after the last come from the loop itself
    from affectsynth.blendshapes.paths import catmull_rom  # lazy: the paths module imports torch

    ring = keys[:-1]
    m = len(ring)
    out = []
    for j in range(n):
        u = j * m / n  # frame n would be frame 0 again
        i = int(math.floor(u)) % m
        seg = [ring[(i - 1) % m], ring[i], ring[(i + 1) % m], ring[(i + 2) % m]]
        v, a = catmull_rom(seg, 1.0 + (u - math.floor(u)))
        out.append(VA(min(1.0, max(-1.0, v)), min(1.0, max(-1.0, a))))
    return out


def plan_path_frames(path: AffectPath, n: int, *, fps: float, sway_deg: tuple[float, float] = (0.0, 0.0),
                     model: "ExpressionModel | None" = None) -> list[FrameTarget]:
    """Frames along a VA path: Catmull-Rom through the key points, as `AffectPath` samples.

    An open path runs from its first key (frame 0) to its last (frame n - 1), as
    `affectsynth.blendshapes.paths.path_va_points`. A closed path (last key equal to the first)
    is a loop: the spline is periodic, frame 0 is the first key, and frame n would be frame 0
    again, so the sequence loops without a pause or a kink.

    Args:
        path: a path in the "va" space (`VA` or `Expression` keys).
        n: number of frames, >= 1.
        fps: frames per second (gives each frame's time).
        sway_deg: (yaw, pitch) amplitude of the head sway (`sway_angles`), degrees.
        model: places `Expression` keys in the VA plane (default: the shipped model).

    Returns:
        n `FrameTarget` with `VA` targets.

    Raises:
        ValueError: bad n or fps, or a path in the "weights" space (its frames have no single
            VA or category label).
    """
    _check_frames(n, fps, "plan_path_frames")
    if path.space != "va":
        raise ValueError(f"plan_path_frames: expected a path in the 'va' space, got {path.space!r}; "
                         "weight-space paths have no per-frame VA label")
    closed = len(path.points) >= 3 and path.points[0] == path.points[-1]
    if closed:
        if model is None and any(isinstance(p, Expression) for p in path.points):
            from affectsynth.blendshapes import ExpressionModel

            model = ExpressionModel.default()
        keys = [[p.clamped().valence, p.clamped().arousal] if isinstance(p, VA) else list(model.expression_va(p))
                for p in path.points]
        points = _closed_va_points(keys, n)
    else:
        from affectsynth.blendshapes.paths import path_va_points  # lazy: the paths module imports torch

        points = path_va_points(path, n, model=model)
    sway = sway_angles(n, sway_deg)
    return [FrameTarget(j, j / fps, points[j], sway[j]) for j in range(n)]


def envelope(u: float, *, rise: float = 0.35) -> float:
    """Intensity profile of one category's segment at u in [0, 1]: onset, apex, offset.

    Smoothstep up over [0, rise], 1 over the apex, smoothstep down over [1 - rise, 1]; 0 at
    both ends with zero slope, so segments join smoothly through the neutral face.

    Example:
        >>> envelope(0.0), envelope(0.5), envelope(1.0)
        (0.0, 1.0, 0.0)
    """
    if not 0.0 < rise <= 0.5:
        raise ValueError(f"envelope: rise must be in (0, 0.5], got {rise}")
    u = min(1.0, max(0.0, float(u)))
    x = min(u, 1.0 - u) / rise
    if x >= 1.0:
        return 1.0
    return x * x * (3.0 - 2.0 * x)


def plan_category_frames(categories: Sequence[str], n: int, *, fps: float, intensity: float = 1.0,
                         sway_deg: tuple[float, float] = (0.0, 0.0)) -> list[FrameTarget]:
    """Frames through categories in turn: each rises from neutral to its apex and returns.

    The n frames are shared equally by the categories; within a category's segment the
    intensity follows `envelope` (times ``intensity``), so every frame is one category at one
    intensity (its label), and the face passes through neutral between categories. The first
    and the last frame are neutral.

    Args:
        categories: category names (see `affectsynth.blendshapes.CATEGORIES`), at least one.
        n: number of frames, >= 1.
        fps: frames per second.
        intensity: apex intensity in [0, 1].
        sway_deg: (yaw, pitch) amplitude of the head sway, degrees.

    Returns:
        n `FrameTarget` with `Expression` targets (variant None: `animate` fixes one per category).

    Raises:
        ValueError: no categories, an unknown one, bad n, fps or intensity.
    """
    _check_frames(n, fps, "plan_category_frames")
    cats = list(categories)
    if not cats:
        raise ValueError("plan_category_frames: expected at least one category, got none")
    if not 0.0 <= intensity <= 1.0:
        raise ValueError(f"plan_category_frames: intensity must be in [0, 1], got {intensity}")
    k = len(cats)
    sway = sway_angles(n, sway_deg)
    out = []
    for j in range(n):
        s = 0.0 if n == 1 else j * k / (n - 1)
        seg = min(int(math.floor(s)), k - 1)
        level = round(intensity * envelope(s - seg), 6)
        out.append(FrameTarget(j, j / fps, Expression(cats[seg], level), sway[j]))
    return out


# --------------------------------------------------------------------------- rendering

#: First word of the sequence's variant draws: a stream of its own, apart from the rotation and light draws.
_VARIANT_STREAM = 0x5E0A47

def sequence_variants(model: "ExpressionModel", categories: Sequence[str], seed: int) -> dict[str, str]:
    """The expression variant of each category of a sequence: one draw per category.

    Categories draw in order of first appearance from one generator of their own stream of
    ``seed``, so each category's pick is independent of the others' (not one shared random
    number) and the same seed gives the same picks.

    Args:
        model: the `ExpressionModel` whose variants are drawn.
        categories: the sequence's categories, repeats allowed.
        seed: the sequence's seed.

    Returns:
        category -> variant name.
    """
    rng = np.random.default_rng([_VARIANT_STREAM, int(seed)])
    out: dict[str, str] = {}
    for c in categories:
        if c not in out:
            out[c] = model.resolve_variant(Expression(c), rng).variant
    return out


@dataclass(frozen=True)
class SequenceDraws:
    """The random draws of one sequence, made once and shared by all its frames.

    Attributes:
        seed: the sequence's seed (also each frame's ``rng_seed``).
        head_rotation_deg: (yaw, pitch) extra head rotation drawn for the sequence, degrees
            ((0, 0) when the synthesizer's settings disable it); each frame adds its sway.
        light: (azimuth_deg, strength) relighting drawn for the sequence, or None (off).
        variants: category -> expression variant of the sequence's categories.
        turned: whether any frame is turned (drawn rotation or sway): then every frame takes
            the re-render path, so a sway through 0 degrees does not switch paths mid-sequence.
    """

    seed: int
    head_rotation_deg: tuple[float, float]
    light: tuple[float, float] | None
    variants: Mapping[str, str]
    turned: bool


def sequence_draws(synth: "Synthesizer", frames: Sequence[FrameTarget], seed: int) -> SequenceDraws:
    """Draw what is random in a sequence once, from ``seed`` and the whole plan.

    The draws depend on the whole plan (its categories, whether any frame sways), never on
    which frames are rendered, so rendering a subset of the frames (a resumed batch) gives the
    same pixels as rendering them all.

    Args:
        synth: the `Synthesizer` (its settings say whether rotation and relighting are drawn).
        frames: the whole plan (`plan_path_frames`, `plan_category_frames`).
        seed: seed of the sequence's draws.

    Returns:
        The sequence's `SequenceDraws`.
    """
    rng = np.random.default_rng(seed)
    yaw_max, pitch_max = synth.settings.head_rotation_deg
    base = (float(rng.uniform(-yaw_max, yaw_max)) if yaw_max else 0.0,
            float(rng.uniform(-pitch_max, pitch_max)) if pitch_max else 0.0)
    strength = synth.settings.light_strength
    light = (float(rng.uniform(-60, 60)), float(rng.uniform(0, strength))) if strength > 0 else None
    # a face turned in any frame is drawn by the re-render path in every frame (the photo-reuse path
    # serves unturned faces only): a sway through 0 degrees must not switch paths between frames
    turned = any(abs(f.sway_deg[0]) + abs(f.sway_deg[1]) > 0 for f in frames) or base != (0.0, 0.0)
    variants = sequence_variants(synth.expressions, [f.target.name for f in frames if isinstance(f.target, Expression)],
                                 seed)
    return SequenceDraws(int(seed), base, light, variants, turned)


def render_frame(synth: "Synthesizer", image: np.ndarray, frame: FrameTarget, draws: SequenceDraws, *,
                 fit: "FaceFit") -> "SynthResult":
    """Render one planned frame with the sequence's draws (what `animate` does per frame).

    Args:
        synth: the `Synthesizer`.
        image: [H, W, 3] uint8 RGB photo (or a face crop of it, with ``fit`` seen in it).
        frame: the planned frame.
        draws: the sequence's `sequence_draws`.
        fit: the face (checked by the caller: `animate`, or the batch's gates).

    Returns:
        The frame's `SynthResult` (image, labels with the target's fixed variant, fit).

    Raises:
        ValueError: a rotation beyond what one photo supports, or a malformed image.
    """
    target = frame.target
    if isinstance(target, Expression) and target.variant is None:
        target = target.with_variant(draws.variants[target.name])
    base = draws.head_rotation_deg
    rot = (base[0] + frame.sway_deg[0], base[1] + frame.sway_deg[1])
    if draws.turned and abs(rot[0]) < 1e-5 and abs(rot[1]) < 1e-5:
        rot = (1e-5, rot[1])  # invisible; keeps this frame on the same render path as its neighbours
    return synth.synthesize(image, target, fit=fit, rng_seed=draws.seed, head_rotation_deg=rot, light=draws.light)


def animate(synth: "Synthesizer", image: np.ndarray, frames: Sequence[FrameTarget], *, fit: "FaceFit | None" = None,
            seed: int = 0) -> Iterator[Frame]:
    """Render planned frames of one face, one at a time (a generator).

    One fit and one texture serve every frame; the expression variant of each category, the
    extra head rotation and the relighting (when ``synth.settings`` enables them) are drawn
    once from ``seed`` and kept for the whole sequence (`sequence_draws`); the per-frame sway
    is added to the drawn rotation. A frame's target with a fixed variant keeps it. Each
    frame is `render_frame`, which ``affectsynth generate --paths`` calls too.

    Args:
        synth: the `Synthesizer`.
        image: [H, W, 3] uint8 RGB photo (or a face crop of it, with ``fit`` seen in it).
        frames: the plan (`plan_path_frames`, `plan_category_frames`).
        fit: the face to animate; default the largest face of ``image``.
        seed: seed of the sequence's draws.

    Yields:
        `Frame` per planned frame, in order.

    Raises:
        ValueError: no face in the image, or a face the gates refuse (before any frame).
    """
    if fit is None:
        fits = synth.fit(image, max_faces=1)
        if not fits:
            raise ValueError("animate: no face found in the image")
        fit = fits[0]
    rejection = synth.check(fit)
    if rejection is not None:
        raise ValueError(f"animate: face refused ({rejection})")
    draws = sequence_draws(synth, frames, seed)
    for f in frames:
        result = render_frame(synth, image, f, draws, fit=fit)
        yield Frame(f.index, f.time_s, result.image, result.labels)
