"""Build an expression library (an `ExpressionModel`) from 4D expression sequences.

Per sequence: the neutral frame is the medoid of the first ``neutral_frames`` frames (the
one with the smallest summed displacement to the others, after rigid alignment), every
frame is rigidly aligned to it (Kabsch on rigid vertices), its displacement is projected
onto the blendshape basis by bounded least squares (weights in [0, 1]), and the apex is
the frame with the largest displacement. Category prototypes are the mean apex weights per
category; the VA model is the binned mean of the weights of VA-annotated frames.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, asdict
from pathlib import Path
from typing import Iterable, Sequence as TypingSequence

import numpy as np

from .basis import BlendshapeBasis
from .facs import CATEGORIES
from .model import ExpressionModel
from .sequences import Sequence, SequenceError, load_sequences
from .targets import Expression
from .va import DEFAULT_VA_ANCHORS, BinnedVAModel

__all__ = [
    "BuildSettings",
    "build_expression_library",
    "build_library_from_dir",
    "rigid_align",
    "BoundedProjector",
]


@dataclass(frozen=True)
class BuildSettings:
    """Options of the 4D builder (one source of defaults for the function and the CLI).

    Attributes:
        neutral_frames: the neutral is picked among the first N frames (>= 1).
        va_bins: bins per VA axis of the binned VA model (>= 1).
        smoothing: Gaussian sigma in bins of the count-weighted VA-bin blur (0 = raw means).
        apex_frames: average the weights of the N largest-displacement frames as the apex.
        rigid_threshold: without explicit rigid vertices, align on the vertices that no
            basis shape moves by more than this fraction of the largest basis motion
            (ICT-FaceKit: the skull, ears and upper teeth, 18% of the vertices) ...
        rigid_fraction: ... or, if fewer than 30 vertices qualify, on this fraction of the
            vertices the basis moves least.
        max_rigid_vertices: cap on the rigid set (evenly subsampled).
        max_fit_vertices: cap on vertices used in the least-squares projection (evenly
            subsampled among vertices the basis moves); speeds up the solve.
        ridge: Tikhonov term added to the normal matrix, relative to its mean diagonal.
        fill_missing: categories without data take the default model's prototype (with a
            warning); otherwise they are left out of the library.
    """

    neutral_frames: int = 5
    va_bins: int = 8
    smoothing: float = 0.5
    apex_frames: int = 1
    rigid_threshold: float = 0.005
    rigid_fraction: float = 0.2
    max_rigid_vertices: int = 2000
    max_fit_vertices: int = 4000
    ridge: float = 1e-6
    fill_missing: bool = True

    def __post_init__(self) -> None:
        for name in ("neutral_frames", "va_bins", "apex_frames", "max_rigid_vertices", "max_fit_vertices"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"BuildSettings: {name} must be an int >= 1, got {v!r}")
        if not 0 < self.rigid_fraction <= 1:
            raise ValueError(f"BuildSettings: rigid_fraction must be in (0, 1], got {self.rigid_fraction}")
        if not 0 <= self.rigid_threshold < 1:
            raise ValueError(f"BuildSettings: rigid_threshold must be in [0, 1), got {self.rigid_threshold}")
        if self.smoothing < 0 or self.ridge < 0:
            raise ValueError(f"BuildSettings: smoothing and ridge must be >= 0, got {self.smoothing}, {self.ridge}")


def rigid_align(src: np.ndarray, dst: np.ndarray, idx: "np.ndarray | None" = None) -> np.ndarray:
    """Rigidly move ``src`` onto ``dst`` (rotation + translation, Kabsch on ``idx``).

    Args:
        src: [..., V, 3] points to move (leading dims are frames).
        dst: [V, 3] target.
        idx: [K] vertex indices used to estimate the motion (default all).

    Returns:
        [..., V, 3] float64, ``src`` after the best rigid motion.
    """
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    single = src.ndim == 2
    X = src[None] if single else src
    a = X if idx is None else X[:, idx]
    b = dst if idx is None else dst[idx]
    ca, cb = a.mean(axis=1, keepdims=True), b.mean(axis=0)
    H = np.einsum("fki,kj->fij", a - ca, b - cb)
    U, _, Vt = np.linalg.svd(H)
    d = np.sign(np.linalg.det(np.einsum("fji,fkj->fik", Vt, U)))
    D = np.zeros_like(H)
    D[:, 0, 0], D[:, 1, 1], D[:, 2, 2] = 1.0, 1.0, d
    R = np.einsum("fji,fjk,flk->fil", Vt, D, U)  # V D U^T
    out = np.einsum("fij,fvj->fvi", R, X - ca) + cb
    return out[0] if single else out


class BoundedProjector:
    """Least squares ``min ||B w - d||`` with ``0 <= w <= 1`` against a fixed basis.

    The normal matrix ``B^T B`` is factored once (Cholesky); each solve is a 53 x 53
    bounded problem (scipy's BVLS), independent of the vertex count.

    Args:
        basis: the blendshape basis.
        vertices: [K] vertex indices used in the fit (default all).
        ridge: Tikhonov term relative to the mean diagonal of ``B^T B``.
    """

    def __init__(self, basis: BlendshapeBasis, vertices: "np.ndarray | None" = None, *, ridge: float = 1e-6):
        from scipy.linalg import cho_factor  # lazy: scipy costs ~0.7 s at import

        D = basis.deltas.detach().cpu().double().numpy()
        if vertices is not None:
            D = D[:, vertices]
        self.vertices = vertices
        self.B = D.reshape(D.shape[0], -1).T  # [3K, S]
        G = self.B.T @ self.B
        G[np.diag_indices_from(G)] += ridge * float(np.mean(np.diag(G)))
        c, _ = cho_factor(G, lower=False)
        self.R = np.triu(c)  # G = R^T R

    def __call__(self, disp: np.ndarray) -> np.ndarray:
        """Weights [N, S] float64 in [0, 1] for displacements [N, V or K, 3]."""
        from scipy.linalg import solve_triangular
        from scipy.optimize import lsq_linear

        d = np.asarray(disp, dtype=np.float64)
        if self.vertices is not None and d.shape[1] != len(self.vertices):
            d = d[:, self.vertices]
        rhs = (d.reshape(d.shape[0], -1) @ self.B)  # [N, S] = B^T d
        y = solve_triangular(self.R, rhs.T, trans="T", lower=False).T  # R^{-T} B^T d
        out = np.empty_like(rhs)
        for n in range(rhs.shape[0]):
            out[n] = lsq_linear(self.R, y[n], bounds=(0.0, 1.0), method="bvls").x
        return np.clip(out, 0.0, 1.0)


def _even_subset(idx: np.ndarray, cap: int) -> np.ndarray:
    if len(idx) <= cap:
        return idx
    return idx[np.linspace(0, len(idx) - 1, cap).round().astype(np.int64)]


def _default_vertex_sets(basis: BlendshapeBasis, s: BuildSettings) -> tuple[np.ndarray, np.ndarray]:
    motion = basis.deltas.detach().cpu().double().norm(dim=2).amax(dim=0).numpy()  # [V]
    still = np.nonzero(motion <= s.rigid_threshold * max(motion.max(), 1e-12))[0]
    if len(still) < 30:
        order = np.argsort(motion, kind="stable")
        still = np.sort(order[: max(3, int(round(s.rigid_fraction * len(motion))))])
    rigid = _even_subset(still, s.max_rigid_vertices)
    moving = np.nonzero(motion > 1e-4 * max(motion.max(), 1e-12))[0]
    fit = _even_subset(moving, s.max_fit_vertices)
    return rigid, fit


def build_expression_library(
    sequences: Iterable[Sequence],
    basis: BlendshapeBasis,
    *,
    settings: "BuildSettings | None" = None,
    rigid_vertices: "TypingSequence[int] | np.ndarray | None" = None,
    reference: "np.ndarray | None" = None,
    **overrides,
) -> ExpressionModel:
    """Build an `ExpressionModel` from 4D sequences (see the module doc for the method).

    Args:
        sequences: from `load_sequences` (or built in memory); frames [T, V, 3] in the
            basis's vertex order and units.
        basis: blendshape basis [S, V, 3] to project onto (the face model's expression basis).
        settings: a `BuildSettings` (default: its defaults).
        rigid_vertices: [K] vertex indices for alignment (default: the vertices the basis
            does not move, see `BuildSettings.rigid_threshold`).
        reference: [V, 3] a neutral mesh in the basis's model space (e.g. the face model's
            mean shape). Each sequence's neutral frame is rigidly aligned to it first, so
            displacements are expressed in the basis's orientation whatever the head pose
            of the capture. Without it the sequences must already be in model orientation
            (only motion within a sequence is removed). Pass it for real captures.

    Returns:
        The library: prototypes of the categories found (others from the default model when
        ``fill_missing``), VA anchors = mean apex VA per category where annotated (else the
        default anchors), a binned VA grid when any frame has VA; ``meta`` records counts.

    Raises:
        SequenceError: no sequences, or a sequence whose vertex count is not the basis's
            (naming its folder).
        ValueError: bad settings.
    """
    s = settings or BuildSettings()
    if overrides:
        s = BuildSettings(**{**asdict(s), **overrides})
    seqs = list(sequences)
    if not seqs:
        raise SequenceError("build_expression_library: no sequences given")
    V = basis.num_vertices
    for q in seqs:
        if q.frames.shape[1] != V:
            raise SequenceError(
                f"build_expression_library: sequence {q.name!r} ('{q.source}') has {q.frames.shape[1]} "
                f"vertices, expected {V} (the basis)"
            )
    rigid_default, fit_idx = _default_vertex_sets(basis, s)
    rigid = rigid_default if rigid_vertices is None else np.asarray(rigid_vertices, dtype=np.int64)
    if rigid.ndim != 1 or len(rigid) < 3 or rigid.min() < 0 or rigid.max() >= V:
        raise ValueError(f"build_expression_library: rigid_vertices must be >= 3 indices in [0, {V})")
    project = BoundedProjector(basis, fit_idx, ridge=s.ridge)
    if reference is not None:
        reference = np.asarray(reference, dtype=np.float64)
        if reference.shape != (V, 3):
            raise ValueError(f"build_expression_library: reference must be [{V}, 3], got {list(reference.shape)}")

    apex_w: dict[str, list[np.ndarray]] = {}
    apex_va: dict[str, list[np.ndarray]] = {}
    va_rows: list[np.ndarray] = []
    va_w: list[np.ndarray] = []
    for q in seqs:
        X = q.frames.astype(np.float64)
        k = min(s.neutral_frames, len(X))
        first = rigid_align(X[:k], X[0], rigid)
        dist = np.linalg.norm(first[:, None] - first[None], axis=-1).mean(axis=-1).sum(axis=1)
        neutral = first[int(np.argmin(dist))]
        if reference is not None:
            neutral = rigid_align(neutral, reference)  # all vertices: identity differences average out
        aligned = rigid_align(X, neutral, rigid)
        disp = aligned - neutral
        mag = np.linalg.norm(disp[:, fit_idx], axis=-1).mean(axis=1)  # [T]
        apex = np.argsort(-mag, kind="stable")[: s.apex_frames]
        need = set(apex.tolist())
        has_va = q.va is not None and np.isfinite(q.va).all(axis=1)
        if q.va is not None:
            need |= set(np.nonzero(has_va)[0].tolist())
        frames = np.array(sorted(need))
        w = dict(zip(frames.tolist(), project(disp[frames])))
        if q.category is not None:
            apex_w.setdefault(q.category, []).append(np.mean([w[i] for i in apex.tolist()], axis=0))
            if q.va is not None and all(has_va[i] for i in apex):
                apex_va.setdefault(q.category, []).append(q.va[apex].mean(axis=0))
        if q.va is not None:
            for i in np.nonzero(has_va)[0].tolist():
                va_rows.append(q.va[i])
                va_w.append(w[i])

    default = ExpressionModel.default()
    S = basis.num_shapes
    cats, protos, resp, anchors, source = [], [], [], [], {}
    for c in CATEGORIES:
        dc = default.categories.index(c)
        resp_row = np.array([
            default.response[dc, default.names.index(nm)] if nm in default.names else 0.6 for nm in basis.names
        ])
        if c == "neutral":
            cats.append(c)
            protos.append(np.zeros(S))
            resp.append(resp_row)
            anchors.append((0.0, 0.0))
            source[c] = "zero"
            continue
        if c in apex_w:
            proto = np.mean(apex_w[c], axis=0)
            source[c] = f"data ({len(apex_w[c])} sequences)"
        elif s.fill_missing:
            proto = default.weights_tensor(Expression(c), basis.names, strict=False).double().numpy()
            source[c] = "default (no sequences)"
        else:
            continue
        anchor = np.asarray(DEFAULT_VA_ANCHORS[c], dtype=np.float64)
        if c in apex_va:
            m = np.mean(apex_va[c], axis=0)
            if np.hypot(*m) > 0.05:
                anchor = m
        cats.append(c)
        protos.append(np.clip(proto, 0.0, 1.0))
        resp.append(resp_row)
        anchors.append(tuple(anchor))

    missing = [c for c, src in source.items() if src.startswith("default")]
    if missing:
        warnings.warn(
            f"build_expression_library: no sequences for {missing}; using the default prototypes", stacklevel=2
        )
    grid = counts = None
    if va_rows:
        binned = BinnedVAModel.fit(np.array(va_rows), np.array(va_w), bins=s.va_bins, smoothing=s.smoothing)
        grid, counts = binned.grid, binned.counts
    meta = {
        "source": "affectsynth.blendshapes.build_expression_library",
        "settings": asdict(s),
        "num_sequences": len(seqs),
        "num_va_frames": len(va_rows),
        "prototype_source": source,
    }
    return ExpressionModel(basis.names, cats, np.array(protos), np.array(resp), np.array(anchors),
                           va_grid=grid, va_counts=counts, meta=meta)


def build_library_from_dir(
    seq_dir: "str | os.PathLike[str]",
    basis: BlendshapeBasis,
    out_path: "str | os.PathLike[str]",
    **opts,
) -> ExpressionModel:
    """Read ``seq_dir`` (layout: `affectsynth.blendshapes.sequences`), build, write ``out_path``.

    Args:
        seq_dir: folder of sequence folders with labels.
        basis: the blendshape basis (the CLI passes the embedded face model's).
        out_path: the npz to write (temp name, then renamed); load it with
            `ExpressionModel.load`.
        **opts: passed to `build_expression_library`: `BuildSettings` fields, ``settings=``,
            ``rigid_vertices=``, ``reference=`` (the face model's neutral mesh; pass it).

    Returns:
        The built model (as saved).
    """
    seqs = load_sequences(seq_dir, num_vertices=basis.num_vertices)
    model = build_expression_library(seqs, basis, **opts)
    model.meta["seq_dir"] = str(Path(seq_dir))
    model.save(out_path)
    return model

