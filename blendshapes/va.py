"""Valence-arousal models: VA point -> blendshape weights (anchor blend and binned grid).

Anchors follow Russell's circumplex of affect (J. A. Russell, "A circumplex model of
affect", J. Pers. Soc. Psychol. 39(6), 1980, Fig. 2 and the scaling of Table 3) and the
category placements used in AffectNet (Mollahosseini et al., IEEE TAC 2017, Fig. 6: mean
valence/arousal per category): happiness pleasant and moderately aroused, surprise the
most aroused and slightly pleasant, fear and anger aroused and unpleasant, disgust and
contempt unpleasant with mild arousal, sadness unpleasant and calm, neutral at the origin.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from types import MappingProxyType
from typing import Mapping

import numpy as np

__all__ = [
    "CALM_ANCHOR",
    "DEFAULT_VA_ANCHORS",
    "AnchorVAModel",
    "BinnedVAModel",
    "clamp_to_disk",
    "expression_point",
    "intensity_response",
    "inverse_smoothstep",
    "smoothstep",
]

#: Category -> (valence, arousal). Values rounded from AffectNet's per-category means,
#: spread slightly in angle so neighbouring categories stay distinguishable.
DEFAULT_VA_ANCHORS: Mapping[str, tuple[float, float]] = MappingProxyType({
    "neutral": (0.0, 0.0),
    "happiness": (0.80, 0.35),
    "surprise": (0.20, 0.90),
    "fear": (-0.45, 0.80),
    "anger": (-0.70, 0.60),
    "disgust": (-0.80, 0.30),
    "contempt": (-0.70, -0.05),
    "sadness": (-0.65, -0.50),
})

#: A virtual anchor with an all-zero prototype in the calm-pleasant quadrant ("relaxed",
#: "serene" in Russell 1980), where no basic category lives: faces there fade from a mild
#: smile (near happiness) or mild sadness towards neutral instead of mixing the two.
CALM_ANCHOR: tuple[float, float] = (0.5, -0.8660254037844386)


def clamp_to_disk(valence: float, arousal: float) -> tuple[float, float]:
    """Project a VA point outside the unit disk radially onto the unit circle."""
    r = math.hypot(valence, arousal)
    if r <= 1.0:
        return float(valence), float(arousal)
    return valence / r, arousal / r


def smoothstep(x: float) -> float:
    """``3 x^2 - 2 x^3`` of x clamped to [0, 1]: the anchor map's radius -> intensity curve.

    Example:
        >>> smoothstep(0.5)
        0.5
    """
    x = min(1.0, max(0.0, float(x)))
    return x * x * (3.0 - 2.0 * x)


def inverse_smoothstep(y: float) -> float:
    """The x in [0, 1] with ``smoothstep(x) == y`` (y clamped to [0, 1]); exact, closed form.

    The cubic's root in [0, 1] is ``0.5 - sin(asin(1 - 2 y) / 3)``.

    Example:
        >>> round(inverse_smoothstep(0.25), 4)
        0.3264
    """
    y = float(y)
    if y <= 0.0 or y >= 1.0:  # exact ends (the closed form leaves ~1e-17 at 0)
        return 0.0 if y <= 0.0 else 1.0
    return 0.5 - math.sin(math.asin(1.0 - 2.0 * y) / 3.0)


def expression_point(anchor: tuple[float, float], intensity: float) -> tuple[float, float]:
    """Where `AnchorVAModel` shows a category at ``intensity``: ``inverse_smoothstep(i) * anchor``.

    The exact inverse of the anchor map along the category's ray: the model maps
    ``VA(s * anchor)`` to the category at ``smoothstep(s)``, so this point maps back to it.

    Args:
        anchor: (valence, arousal) of the category's anchor.
        intensity: in [0, 1] (clamped).

    Returns:
        (valence, arousal) of the point.
    """
    s = inverse_smoothstep(intensity)
    return s * float(anchor[0]), s * float(anchor[1])


def intensity_response(intensity: "float | np.ndarray", k: "float | np.ndarray") -> np.ndarray:
    """``f_k(i) = i * (1 + k - k * i)``: f(0) = 0, f(1) = 1, monotone for k in [0, 1].

    Args:
        intensity: scalar or array in [0, 1].
        k: broadcastable response shape; 0 is linear, larger front-loads the motion.
    """
    i = np.asarray(intensity, dtype=np.float64)
    k = np.asarray(k, dtype=np.float64)
    return i * (1.0 + k - k * i)


@dataclass(frozen=True)
class AnchorVAModel:
    """Angular blend of category prototypes placed at VA anchors.

    For a VA point with radius r (clamped to 1) and angle a, the two anchors angularly
    adjacent to a (sorted by angle, wrapping around) are blended linearly in angle, and
    each is applied at intensity ``smoothstep(min(1, r / rho(a)))`` (then through its
    per-shape response) where rho is the anchor radius interpolated the same way: the
    anchor point gives the apex, half-way to it gives intensity 0.5 exactly (smoothstep
    fixes 0.5), the origin gives neutral, and further out stays at the apex. Continuous
    everywhere; the smoothstep keeps the angular change near the origin gentle (the
    weights' Lipschitz constant stays below about 5 per unit of VA with the default
    anchors). Rows with an all-zero prototype are allowed (see `CALM_ANCHOR`).

    Args:
        prototypes: [C, S] float64 apex weights of the non-neutral categories.
        response: [C, S] intensity response k per category and shape (see
            `intensity_response`).
        anchors: [C, 2] (valence, arousal) per category, each with radius > 0.05.
    """

    prototypes: np.ndarray
    response: np.ndarray
    anchors: np.ndarray

    def __post_init__(self) -> None:
        a = np.asarray(self.anchors, dtype=np.float64)
        if a.ndim != 2 or a.shape[1] != 2 or a.shape[0] < 1:
            raise ValueError(f"AnchorVAModel: anchors must be [C, 2], got {list(a.shape)}")
        if self.prototypes.shape[0] != a.shape[0] or self.response.shape != self.prototypes.shape:
            raise ValueError(
                "AnchorVAModel: prototypes and response must be [C, S] with C = len(anchors), "
                f"got {list(self.prototypes.shape)}, {list(self.response.shape)}, C={a.shape[0]}"
            )
        radius = np.hypot(a[:, 0], a[:, 1])
        if (radius < 0.05).any():
            raise ValueError(f"AnchorVAModel: anchor radii must be > 0.05, got {radius.tolist()}")

    def weights(self, valence: float, arousal: float) -> np.ndarray:
        """[S] float64 weights in [0, 1] for one VA point (radius clamped to 1)."""
        v, a = clamp_to_disk(valence, arousal)
        r = math.hypot(v, a)
        S = self.prototypes.shape[1]
        if r == 0.0:
            return np.zeros(S)
        ang = np.arctan2(self.anchors[:, 1], self.anchors[:, 0])
        rad = np.hypot(self.anchors[:, 0], self.anchors[:, 1])
        order = np.argsort(ang, kind="stable")
        ang, rad = ang[order], rad[order]
        theta = math.atan2(a, v)
        C = len(order)
        i = int(np.searchsorted(ang, theta, side="right")) - 1
        lo = ang[i] if i >= 0 else ang[-1] - 2 * math.pi
        i %= C
        j = (i + 1) % C
        span = (ang[j] - ang[i]) % (2 * math.pi)
        t = 0.0 if span <= 1e-12 else min(1.0, max(0.0, (theta - lo) / span))
        ci, cj = order[i], order[j]
        rho = (1 - t) * rad[i] + t * rad[j]
        intensity = smoothstep(r / rho)
        wi = self.prototypes[ci] * intensity_response(intensity, self.response[ci])
        wj = self.prototypes[cj] * intensity_response(intensity, self.response[cj])
        return np.clip((1 - t) * wi + t * wj, 0.0, 1.0)


@dataclass(frozen=True)
class BinnedVAModel:
    """A grid of per-bin mean weights over [-1, 1]^2 with bilinear lookup.

    Bin (i, j) covers valence bin i and arousal bin j of ``G`` equal bins; its value sits
    at the bin centre and lookups interpolate bilinearly between centres (clamped at the
    border), so the map is continuous. Points outside the unit disk are clamped to it.

    Args:
        grid: [G, G, S] float64 weights in [0, 1], indexed [valence bin, arousal bin, shape].
        counts: [G, G] int64 number of frames that fell in each bin (0 = filled bin).
    """

    grid: np.ndarray
    counts: np.ndarray

    def __post_init__(self) -> None:
        g = self.grid
        if g.ndim != 3 or g.shape[0] != g.shape[1] or g.shape[0] < 1:
            raise ValueError(f"BinnedVAModel: grid must be [G, G, S], got {list(g.shape)}")
        if self.counts.shape != g.shape[:2]:
            raise ValueError(
                f"BinnedVAModel: counts must be [{g.shape[0]}, {g.shape[1]}], got {list(self.counts.shape)}"
            )

    @property
    def bins(self) -> int:
        """G, bins per axis."""
        return int(self.grid.shape[0])

    def weights(self, valence: float, arousal: float) -> np.ndarray:
        """[S] float64 weights: bilinear interpolation of bin centres."""
        v, a = clamp_to_disk(valence, arousal)
        G = self.bins
        # Continuous bin coordinate: centre of bin i is at i.
        x = min(G - 1.0, max(0.0, (v + 1.0) * G / 2.0 - 0.5))
        y = min(G - 1.0, max(0.0, (a + 1.0) * G / 2.0 - 0.5))
        i0, j0 = int(math.floor(x)), int(math.floor(y))
        i1, j1 = min(i0 + 1, G - 1), min(j0 + 1, G - 1)
        tx, ty = x - i0, y - j0
        g = self.grid
        out = ((1 - tx) * (1 - ty) * g[i0, j0] + tx * (1 - ty) * g[i1, j0]
               + (1 - tx) * ty * g[i0, j1] + tx * ty * g[i1, j1])
        return np.clip(out, 0.0, 1.0)

    @staticmethod
    def bin_index(valence: np.ndarray, arousal: np.ndarray, bins: int) -> tuple[np.ndarray, np.ndarray]:
        """Bin indices ([N] int64 each) of VA points (clamped to the unit disk first)."""
        v = np.asarray(valence, dtype=np.float64)
        a = np.asarray(arousal, dtype=np.float64)
        r = np.maximum(1.0, np.hypot(v, a))
        v, a = v / r, a / r
        i = np.clip(np.floor((v + 1.0) * bins / 2.0), 0, bins - 1).astype(np.int64)
        j = np.clip(np.floor((a + 1.0) * bins / 2.0), 0, bins - 1).astype(np.int64)
        return i, j

    @classmethod
    def fit(
        cls,
        va: np.ndarray,
        weights: np.ndarray,
        *,
        bins: int = 8,
        smoothing: float = 0.0,
        fill_iterations: int = 500,
    ) -> "BinnedVAModel":
        """Per-bin mean weights of annotated frames, smoothed, empty bins filled.

        Args:
            va: [N, 2] (valence, arousal) per frame, in [-1, 1].
            weights: [N, S] blendshape weights per frame.
            bins: G, bins per axis (>= 1).
            smoothing: Gaussian sigma in bins for a count-weighted (normalised) blur of the
                bin means; 0 keeps the raw means in occupied bins.
            fill_iterations: Jacobi iterations of the harmonic (Laplace) fill of empty
                bins from their neighbours, occupied bins held fixed.

        Raises:
            ValueError: shapes disagree, no frames, or bins < 1.
        """
        va = np.asarray(va, dtype=np.float64)
        w = np.asarray(weights, dtype=np.float64)
        if va.ndim != 2 or va.shape[1] != 2 or w.ndim != 2 or w.shape[0] != va.shape[0]:
            raise ValueError(
                f"BinnedVAModel.fit: expected va [N, 2] and weights [N, S], got "
                f"{list(va.shape)} and {list(w.shape)}"
            )
        if va.shape[0] == 0:
            raise ValueError("BinnedVAModel.fit: no VA-annotated frames")
        if bins < 1:
            raise ValueError(f"BinnedVAModel.fit: bins must be >= 1, got {bins}")
        S = w.shape[1]
        i, j = cls.bin_index(va[:, 0], va[:, 1], bins)
        sums = np.zeros((bins, bins, S))
        counts = np.zeros((bins, bins), dtype=np.int64)
        np.add.at(sums, (i, j), w)
        np.add.at(counts, (i, j), 1)
        filled = counts > 0
        if smoothing > 0:
            r = int(math.ceil(3 * smoothing))
            k = np.exp(-0.5 * (np.arange(-r, r + 1) / smoothing) ** 2)
            num = _blur2(sums, k)
            den = _blur2(counts[..., None].astype(np.float64), k)
            mean = np.where(den > 1e-12, num / np.maximum(den, 1e-12), 0.0)
        else:
            mean = sums / np.maximum(counts, 1)[..., None]
        grid = np.where(filled[..., None], mean, 0.0)
        if not filled.all():
            grid = _harmonic_fill(grid, filled, fill_iterations)
        return cls(np.clip(grid, 0.0, 1.0), counts)


def _blur2(x: np.ndarray, k: np.ndarray) -> np.ndarray:
    """Separable zero-padded blur of [G, G, S] along the first two axes."""
    r = (len(k) - 1) // 2
    G = x.shape[0]
    out = np.zeros_like(x)
    for d in range(-r, r + 1):
        lo, hi = max(0, -d), min(G, G - d)
        out[lo:hi] += k[d + r] * x[lo + d:hi + d]
    x, out = out, np.zeros_like(out)
    for d in range(-r, r + 1):
        lo, hi = max(0, -d), min(G, G - d)
        out[:, lo:hi] += k[d + r] * x[:, lo + d:hi + d]
    return out


def _harmonic_fill(grid: np.ndarray, known: np.ndarray, iterations: int) -> np.ndarray:
    """Fill unknown bins with the discrete harmonic interpolant of known bins."""
    g = grid.copy()
    known_mean = grid[known].mean(axis=0)
    g[~known] = known_mean
    G = g.shape[0]
    for _ in range(iterations):
        p = np.pad(g, ((1, 1), (1, 1), (0, 0)), mode="edge")
        avg = 0.25 * (p[:-2, 1:-1] + p[2:, 1:-1] + p[1:-1, :-2] + p[1:-1, 2:])
        g = np.where(known[..., None], grid, avg)
        if G == 1:
            break
    return g
