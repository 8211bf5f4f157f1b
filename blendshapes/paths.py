"""Affect path sampling: an `AffectPath` of key targets -> a sequence of VA points or weights.

The path itself is plain data (`affectsynth.blendshapes.targets.AffectPath`); sampling needs
an `ExpressionModel` (the VA point of an `Expression` key is `ExpressionModel.expression_va`,
and every sample is mapped to weights by the model), so it lives here, above both.
"""

from __future__ import annotations

import math
from typing import Sequence

from .model import ExpressionModel
from .targets import AffectPath, Expression, TargetError, VA

__all__ = ["catmull_rom", "path_va_points", "sample_path"]


def catmull_rom(p: Sequence[Sequence[float]], u: float) -> list[float]:
    """Uniform Catmull-Rom spline through key rows ``p`` at parameter u in [0, len(p) - 1].

    End tangents come from reflected phantom keys; u = k lands exactly on key k.

    Args:
        p: K rows of equal length D (K >= 1).
        u: spline parameter; clamped to the last segment beyond K - 1.

    Returns:
        The D values at u.
    """
    k = len(p)
    if k == 1:
        return list(p[0])
    i = min(int(math.floor(u)), k - 2)
    t = u - i
    p1, p2 = p[i], p[i + 1]
    p0 = p[i - 1] if i > 0 else [2 * a - b for a, b in zip(p1, p2)]
    p3 = p[i + 2] if i + 2 < k else [2 * b - a for a, b in zip(p1, p2)]
    t2, t3 = t * t, t * t * t
    return [
        0.5 * ((2 * b) + (-a + c) * t + (2 * a - 5 * b + 4 * c - d) * t2
               + (-a + 3 * b - 3 * c + d) * t3)
        for a, b, c, d in zip(p0, p1, p2, p3)
    ]


def _check_n(n: int) -> int:
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise TargetError(f"sample_path: n must be an int >= 1, got {n!r}")
    return n


def _key_va(p: "VA | Expression", model: ExpressionModel) -> tuple[float, float]:
    if isinstance(p, VA):
        c = p.clamped()
        return c.valence, c.arousal
    return model.expression_va(p)


def path_va_points(path: AffectPath, n: int, *, model: "ExpressionModel | None" = None) -> list[VA]:
    """The VA points of ``n`` evenly spaced samples of a path (its "va" reading).

    Args:
        path: the path.
        n: number of samples, >= 1; n = 1 gives the first key point.
        model: gives the VA point of `Expression` keys (`ExpressionModel.expression_va`);
            default `ExpressionModel.default()`.

    Returns:
        n `VA` points, clipped to [-1, 1] (Catmull-Rom may overshoot between keys).

    Raises:
        TargetError: n is not an int >= 1.
    """
    n = _check_n(n)
    model = model or ExpressionModel.default()
    keys = [list(_key_va(p, model)) for p in path.points]
    out = []
    for j in range(n):
        u = 0.0 if n == 1 else j * (len(keys) - 1) / (n - 1)
        v, a = catmull_rom(keys, u)
        out.append(VA(min(1.0, max(-1.0, v)), min(1.0, max(-1.0, a))))
    return out


def sample_path(path: AffectPath, n: int, *, model: "ExpressionModel | None" = None) -> list[dict[str, float]]:
    """Sample ``n`` weight dicts (blendshape name -> weight in [0, 1]) along a path.

    Space "va": every VA point of `path_va_points` through the model's VA map. Space
    "weights": the spline runs through the keys' weight vectors (clipped to [0, 1]).

    Args:
        path: the path.
        n: number of frames, >= 1.
        model: the expression model; default `ExpressionModel.default()`.

    Returns:
        n dicts over the model's `names`.

    Raises:
        TargetError: n is not an int >= 1.

    Example:
        >>> frames = sample_path(AffectPath((VA(0, 0), Expression("happiness"))), 3)
        >>> len(frames), frames[0]["mouthSmile_L"]
        (3, 0.0)
    """
    n = _check_n(n)
    model = model or ExpressionModel.default()
    if path.space == "va":
        return [model.weights(t) for t in path_va_points(path, n, model=model)]
    names = model.names
    keys = [list(model.weights_array(p)) for p in path.points]
    out = []
    for j in range(n):
        u = 0.0 if n == 1 else j * (len(keys) - 1) / (n - 1)
        row = catmull_rom(keys, u)
        out.append({s: min(1.0, max(0.0, w)) for s, w in zip(names, row)})
    return out
