"""Expression model: maps targets (category, VA, AUs) to blendshape weights."""

from __future__ import annotations

import json
import os
import zipfile
from functools import lru_cache
from pathlib import Path
from types import MappingProxyType
from typing import Any, Mapping, Sequence

import numpy as np
import torch

from .facs import (
    ARKIT_NAMES,
    AU_RESPONSE,
    AU_TO_BLENDSHAPES,
    CATEGORIES,
    CATEGORY_AUS,
    SUPPORTED_AUS,
)
from .targets import AUs, Expression, VA
from .va import CALM_ANCHOR, DEFAULT_VA_ANCHORS, AnchorVAModel, BinnedVAModel, intensity_response

__all__ = ["ExpressionModel", "ModelFileError", "FORMAT_VERSION"]

#: Version of the npz layout written by `ExpressionModel.save`.
FORMAT_VERSION = 1


class ModelFileError(ValueError):
    """An expression-model file is missing arrays or has bad ones (names the file)."""


def _au_matrix(names: Sequence[str]) -> np.ndarray:
    """[A, S] gains of every supported AU over ``names``."""
    col = {n: i for i, n in enumerate(names)}
    m = np.zeros((len(SUPPORTED_AUS), len(names)))
    for a, au in enumerate(SUPPORTED_AUS):
        for shape, gain in AU_TO_BLENDSHAPES[au].items():
            if shape in col:
                m[a, col[shape]] = gain
    return m


class ExpressionModel:
    """Target -> blendshape weights, over a fixed list of blendshape names.

    A model holds, per category, apex weights (``prototypes``) and an intensity response
    per shape; VA anchors per category (an `AnchorVAModel`) and optionally a binned VA
    grid (a `BinnedVAModel`, built from 4D data; when present it answers VA targets);
    and an AU -> blendshape table for `AUs` targets.

    Mapping rules (deterministic; every weight in [0, 1]):
        * ``Expression(c, i)``: ``prototype[c] * f_k(i)`` with ``f_k(i) = i (1 + k - k i)``,
          so i = 0 is exactly neutral (all zeros) and i = 0.5 shows (1 + k) / 2 of the apex.
        * ``VA(v, a)``: radius clamped to 1; grid lookup if the model has a grid, else the
          angular anchor blend over the category anchors plus the zero-prototype
          `CALM_ANCHOR` (see `AnchorVAModel`): ``VA(s * anchor[c])`` equals
          ``Expression(c, smoothstep(s))``, so the anchor itself is the apex.
        * ``AUs``: ``min(1, sum_au intensity * gain[au, shape])`` (linear per AU).

    Args:
        names: S blendshape names (order of every weight vector).
        categories: C category names; must include "neutral" (its prototype is all zero).
        prototypes: [C, S] apex weights in [0, 1].
        response: [C, S] intensity response k in [0, 1].
        va_anchors: [C, 2] (valence, arousal); neutral's must be the origin.
        va_grid: optional [G, G, S] binned VA means (answers VA targets when given).
        va_counts: optional [G, G] int frames per bin of ``va_grid``.
        au_names: the A AU keys of ``au_table``.
        au_table: optional [A, S] gains for the AU keys ``au_names`` (default: the FACS table).
        meta: JSON-safe dict saved with the model (provenance).
    """

    def __init__(
        self,
        names: Sequence[str],
        categories: Sequence[str],
        prototypes: np.ndarray,
        response: np.ndarray,
        va_anchors: np.ndarray,
        *,
        va_grid: "np.ndarray | None" = None,
        va_counts: "np.ndarray | None" = None,
        au_names: "Sequence[str] | None" = None,
        au_table: "np.ndarray | None" = None,
        meta: "Mapping[str, Any] | None" = None,
    ) -> None:
        self.names: tuple[str, ...] = tuple(str(n) for n in names)
        self._categories: tuple[str, ...] = tuple(str(c) for c in categories)
        S, C = len(self.names), len(self._categories)
        if len(set(self.names)) != S:
            raise ValueError("ExpressionModel: names must be unique")
        if "neutral" not in self._categories:
            raise ValueError(f"ExpressionModel: categories must include 'neutral', got {self._categories}")
        unknown = [c for c in self._categories if c not in CATEGORIES]
        if unknown:
            raise ValueError(f"ExpressionModel: unknown categories {unknown}; expected from {CATEGORIES}")
        p = np.asarray(prototypes, dtype=np.float64)
        k = np.asarray(response, dtype=np.float64)
        a = np.asarray(va_anchors, dtype=np.float64)
        for label, arr, shape in (("prototypes", p, (C, S)), ("response", k, (C, S)), ("va_anchors", a, (C, 2))):
            if arr.shape != shape:
                raise ValueError(f"ExpressionModel: {label} must be {list(shape)}, got {list(arr.shape)}")
            if not np.isfinite(arr).all():
                raise ValueError(f"ExpressionModel: {label} has non-finite values")
        if p.min() < 0 or p.max() > 1:
            raise ValueError(f"ExpressionModel: prototypes must be in [0, 1], got [{p.min()}, {p.max()}]")
        if k.min() < 0 or k.max() > 1:
            raise ValueError(f"ExpressionModel: response must be in [0, 1], got [{k.min()}, {k.max()}]")
        n = self._categories.index("neutral")
        p[n] = 0.0
        if np.abs(a[n]).max() > 1e-9:
            raise ValueError(f"ExpressionModel: neutral's VA anchor must be (0, 0), got {a[n].tolist()}")
        for arr in (p, k, a):
            arr.setflags(write=False)
        self.prototypes = p
        self.response = k
        self._anchors = a
        others = [i for i in range(C) if i != n]
        self._anchor_model = None
        if others:
            S0 = np.zeros((1, S))
            self._anchor_model = AnchorVAModel(
                np.vstack([p[others], S0]), np.vstack([k[others], S0]), np.vstack([a[others], [CALM_ANCHOR]])
            )
        self.va_grid: "BinnedVAModel | None" = None
        if va_grid is not None:
            g = np.asarray(va_grid, dtype=np.float64)
            counts = (np.ones(g.shape[:2], dtype=np.int64) if va_counts is None
                      else np.asarray(va_counts, dtype=np.int64))
            if g.ndim != 3 or g.shape[2] != S:
                raise ValueError(f"ExpressionModel: va_grid must be [G, G, {S}], got {list(g.shape)}")
            self.va_grid = BinnedVAModel(np.clip(g, 0.0, 1.0), counts)
        if au_table is None:
            self.au_names: tuple[str, ...] = SUPPORTED_AUS
            self.au_table = _au_matrix(self.names)
        else:
            self.au_names = tuple(str(x) for x in (au_names or ()))
            self.au_table = np.asarray(au_table, dtype=np.float64)
            if self.au_table.shape != (len(self.au_names), S):
                raise ValueError(
                    f"ExpressionModel: au_table must be [{len(self.au_names)}, {S}], got "
                    f"{list(self.au_table.shape)}"
                )
        self.meta: dict[str, Any] = dict(meta or {})
        self._col = {nm: i for i, nm in enumerate(self.names)}
        self._au_row = {nm: i for i, nm in enumerate(self.au_names)}

    # ------------------------------------------------------------------ construction
    @classmethod
    def default(cls) -> "ExpressionModel":
        """The shipped FACS-based model over the 53 ARKit names (cached; treat as read-only).

        Prototypes are `facs.CATEGORY_AUS` mapped through `facs.AU_TO_BLENDSHAPES`; each
        shape's response k is the gain-weighted mean of its AUs' `facs.AU_RESPONSE`;
        VA anchors are `va.DEFAULT_VA_ANCHORS`.
        """
        return _default_model()

    @property
    def categories(self) -> tuple[str, ...]:
        """Category names, neutral included."""
        return self._categories

    @property
    def va_anchors(self) -> Mapping[str, tuple[float, float]]:
        """Category -> (valence, arousal) anchor."""
        return MappingProxyType({c: (float(v), float(a)) for c, (v, a) in zip(self._categories, self._anchors)})

    # ------------------------------------------------------------------ mapping
    def weights_array(self, target: "Expression | VA | AUs") -> np.ndarray:
        """[S] float64 weights in [0, 1] in `names` order (see the class doc for the rules).

        Raises:
            TypeError: not a target.
            ValueError: a category or AU this model does not have.
        """
        if isinstance(target, Expression):
            if target.name not in self._categories:
                raise ValueError(
                    f"ExpressionModel.weights: category {target.name!r} is not in this model "
                    f"(has {self._categories})"
                )
            c = self._categories.index(target.name)
            w = self.prototypes[c] * intensity_response(target.intensity, self.response[c])
        elif isinstance(target, VA):
            if self.va_grid is not None:
                w = self.va_grid.weights(target.valence, target.arousal)
            elif self._anchor_model is not None:
                w = self._anchor_model.weights(target.valence, target.arousal)
            else:
                w = np.zeros(len(self.names))
        elif isinstance(target, AUs):
            w = np.zeros(len(self.names))
            for au, value in target.units.items():
                row = self._au_row.get(au)
                if row is None:
                    raise ValueError(f"ExpressionModel.weights: AU {au!r} is not in this model's table")
                w += value * self.au_table[row]
        else:
            raise TypeError(
                "ExpressionModel.weights: target must be Expression, VA or AUs, got "
                f"{type(target).__name__}"
            )
        return np.clip(w, 0.0, 1.0)

    def weights(self, target: "Expression | VA | AUs") -> dict[str, float]:
        """Blendshape name -> weight in [0, 1] for every name in `names`."""
        return dict(zip(self.names, (float(x) for x in self.weights_array(target))))

    def weights_tensor(
        self,
        target: "Expression | VA | AUs",
        names: "Sequence[str] | None" = None,
        *,
        dtype: torch.dtype = torch.float32,
        device: "torch.device | str | None" = None,
        strict: bool = True,
    ) -> torch.Tensor:
        """Weights as a [S'] tensor ordered by ``names`` (default: `names`).

        Args:
            target: the target.
            names: output order, e.g. a `BlendshapeBasis.names`.
            dtype: of the result.
            device: of the result (default CPU).
            strict: raise on names the model lacks (else they get weight 0).
        """
        w = self.weights_array(target)
        if names is None:
            return torch.as_tensor(w, dtype=dtype, device=device)
        out = np.zeros(len(names))
        for i, nm in enumerate(names):
            col = self._col.get(nm)
            if col is None:
                if strict:
                    raise ValueError(
                        f"ExpressionModel.weights_tensor: blendshape {nm!r} is not in this model"
                    )
                continue
            out[i] = w[col]
        return torch.as_tensor(out, dtype=dtype, device=device)

    # ------------------------------------------------------------------ files
    def save(self, path: "str | os.PathLike[str]") -> Path:
        """Write an npz (no pickled objects); written to a temp name then renamed.

        Returns:
            The path written.
        """
        path = Path(path)
        arrays: dict[str, np.ndarray] = {
            "format_version": np.array(FORMAT_VERSION, dtype=np.int64),
            "names": np.array(self.names, dtype=np.str_),
            "categories": np.array(self._categories, dtype=np.str_),
            "prototypes": self.prototypes.astype(np.float32),
            "response": self.response.astype(np.float32),
            "va_anchors": self._anchors.astype(np.float32),
            "au_names": np.array(self.au_names, dtype=np.str_),
            "au_table": self.au_table.astype(np.float32),
            "meta_json": np.array(json.dumps(self.meta, sort_keys=True), dtype=np.str_),
        }
        if self.va_grid is not None:
            arrays["va_grid"] = self.va_grid.grid.astype(np.float32)
            arrays["va_counts"] = self.va_grid.counts.astype(np.int64)
        tmp = path.with_name(path.name + ".tmp.npz")
        np.savez_compressed(tmp, **arrays)
        os.replace(tmp, path)
        return path

    @classmethod
    def load(cls, path: "str | os.PathLike[str]") -> "ExpressionModel":
        """Read a model written by `save` (or by `build_library_from_dir`).

        Raises:
            FileNotFoundError: no such file.
            ModelFileError: not an npz, a missing/ill-shaped array, or a newer format.
        """
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"ExpressionModel.load: no such file '{path}'")
        try:
            with np.load(path, allow_pickle=False) as z:
                data = {k: z[k] for k in z.files}
        except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
            raise ModelFileError(f"ExpressionModel.load: '{path}' is not a readable npz: {e}") from None
        required = ("format_version", "names", "categories", "prototypes", "response", "va_anchors")
        missing = [k for k in required if k not in data]
        if missing:
            raise ModelFileError(f"ExpressionModel.load: '{path}' lacks arrays {missing}")
        version = int(data["format_version"])
        if version > FORMAT_VERSION:
            raise ModelFileError(
                f"ExpressionModel.load: '{path}' has format {version}; this code reads <= {FORMAT_VERSION}"
            )
        try:
            meta = json.loads(str(data["meta_json"])) if "meta_json" in data else {}
            return cls(
                [str(x) for x in data["names"]],
                [str(x) for x in data["categories"]],
                data["prototypes"],
                data["response"],
                data["va_anchors"],
                va_grid=data.get("va_grid"),
                va_counts=data.get("va_counts"),
                au_names=[str(x) for x in data["au_names"]] if "au_names" in data else None,
                au_table=data.get("au_table"),
                meta=meta,
            )
        except (ValueError, TypeError) as e:
            raise ModelFileError(f"ExpressionModel.load: '{path}': {e}") from None

    def __repr__(self) -> str:
        grid = f", va_grid={self.va_grid.bins}x{self.va_grid.bins}" if self.va_grid is not None else ""
        return f"ExpressionModel(shapes={len(self.names)}, categories={self._categories}{grid})"


def _category_arrays(names: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """[C, S] prototypes and responses of the FACS default over ``names``."""
    col = {n: i for i, n in enumerate(names)}
    C, S = len(CATEGORIES), len(names)
    proto = np.zeros((C, S))
    kw = np.zeros((C, S))
    gw = np.zeros((C, S))
    for c, cat in enumerate(CATEGORIES):
        for au, level in CATEGORY_AUS[cat].items():
            k_au = AU_RESPONSE.get(au.split("_")[0], AU_RESPONSE["default"])
            for shape, gain in AU_TO_BLENDSHAPES[au].items():
                s = col[shape]
                proto[c, s] += level * gain
                kw[c, s] += level * gain * k_au
                gw[c, s] += level * gain
    response = np.where(gw > 0, kw / np.maximum(gw, 1e-12), AU_RESPONSE["default"])
    return np.clip(proto, 0.0, 1.0), response


@lru_cache(maxsize=1)
def _default_model() -> ExpressionModel:
    proto, response = _category_arrays(ARKIT_NAMES)
    anchors = np.array([DEFAULT_VA_ANCHORS[c] for c in CATEGORIES])
    return ExpressionModel(
        ARKIT_NAMES, CATEGORIES, proto, response, anchors,
        meta={"source": "affectsynth FACS default (EMFACS prototypes, facs.AU_TO_BLENDSHAPES)"},
    )
