"""Expression model: maps targets (category, VA, AUs) to blendshape weights."""

from __future__ import annotations

import io
import json
import math
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
    CATEGORY_VARIANTS,
    SUPPORTED_AUS,
)
from ._atomic import atomic_write_bytes
from .targets import AUs, Expression, VA
from .va import (
    CALM_ANCHOR, DEFAULT_VA_ANCHORS, AnchorVAModel, BinnedVAModel, expression_point, intensity_response,
)

__all__ = ["ExpressionModel", "ModelFileError", "FORMAT_VERSION", "SINGLE_VARIANT", "resolve_variant"]

#: Version of the npz layout written by `ExpressionModel.save` (2: per-category variants).
FORMAT_VERSION = 2

#: The variant name of categories given without variants (e.g. a library built from 4D data:
#: one apex per category).
SINGLE_VARIANT = "apex"


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

    A model holds, per category, one or more named variants (EMFACS prototypes, e.g. anger
    "closed" and "open"), each with apex weights and an intensity response per shape; the
    first variant of a category is its default, and ``prototypes`` / ``response`` hold the
    defaults (the VA map uses those, so VA targets stay continuous); VA anchors per category (an `AnchorVAModel`) and optionally a binned VA
    grid (a `BinnedVAModel`, built from 4D data; when present it answers VA targets);
    and an AU -> blendshape table for `AUs` targets.

    Mapping rules (deterministic; every weight in [0, 1]):
        * ``Expression(c, i, variant)``: ``prototype[c, variant] * f_k(i)`` with
          ``f_k(i) = i (1 + k - k i)``, so i = 0 is exactly neutral (all zeros) and i = 0.5
          shows (1 + k) / 2 of the apex; variant None is the default variant.
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
        variants: optional category -> {variant name: ([S] apex weights, [S] response)} in
            order; a category's first variant is its default and must equal its row of
            ``prototypes`` / ``response``. Categories not listed get one variant,
            `SINGLE_VARIANT` ("apex"), from ``prototypes`` / ``response``.

    Raises:
        ValueError: shapes, ranges or names that do not fit together (the message says which).
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
        variants: "Mapping[str, Mapping[str, tuple[np.ndarray, np.ndarray]]] | None" = None,
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
        p = np.array(prototypes, dtype=np.float64)  # copies: neutral's row is zeroed below
        k = np.array(response, dtype=np.float64)
        a = np.array(va_anchors, dtype=np.float64)
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
        self._set_variants(variants or {}, n)
        self._col = {nm: i for i, nm in enumerate(self.names)}
        self._au_row = {nm: i for i, nm in enumerate(self.au_names)}

    def _set_variants(self, variants: Mapping[str, Mapping[str, tuple[np.ndarray, np.ndarray]]], neutral: int) -> None:
        S = len(self.names)
        unknown = [c for c in variants if c not in self._categories]
        if unknown:
            raise ValueError(f"ExpressionModel: variants name categories {unknown} this model lacks "
                             f"(has {self._categories})")
        keys: list[tuple[str, str]] = []
        protos, resps = [], []
        for c, cat in enumerate(self._categories):
            given = variants.get(cat) or {SINGLE_VARIANT: (self.prototypes[c], self.response[c])}
            for k, (name, pair) in enumerate(given.items()):
                name = str(name)
                try:
                    Expression(cat, 1.0, name)
                except (TypeError, ValueError) as e:
                    raise ValueError(f"ExpressionModel: {cat} variant {name!r}: {e}") from None
                p, r = (np.asarray(x, dtype=np.float64) for x in pair)
                if p.shape != (S,) or r.shape != (S,):
                    raise ValueError(f"ExpressionModel: {cat} variant {name!r} must be two [{S}] arrays, "
                                     f"got {list(p.shape)}, {list(r.shape)}")
                if not (np.isfinite(p).all() and np.isfinite(r).all()) or p.min() < 0 or p.max() > 1 \
                        or r.min() < 0 or r.max() > 1:
                    raise ValueError(f"ExpressionModel: {cat} variant {name!r} weights and response must be "
                                     f"finite and in [0, 1]")
                if c == neutral:
                    p = np.zeros(S)
                if k == 0 and not (np.allclose(p, self.prototypes[c], atol=1e-6)
                                   and np.allclose(r, self.response[c], atol=1e-6)):
                    raise ValueError(f"ExpressionModel: {cat}'s first variant {name!r} is its default and must "
                                     f"equal its row of prototypes and response")
                keys.append((cat, name))
                protos.append(p)
                resps.append(r)
        if len(set(keys)) != len(keys):
            raise ValueError("ExpressionModel: variant names must be unique within a category")
        self._variant_keys: tuple[tuple[str, str], ...] = tuple(keys)
        self._variant_row = {key: i for i, key in enumerate(keys)}
        self.variant_prototypes = np.array(protos).reshape(len(keys), S)
        self.variant_response = np.array(resps).reshape(len(keys), S)
        for arr in (self.variant_prototypes, self.variant_response):
            arr.setflags(write=False)

    # ------------------------------------------------------------------ construction
    @classmethod
    def default(cls) -> "ExpressionModel":
        """The shipped FACS-based model over the 53 ARKit names (cached; treat as read-only).

        Variants are `facs.CATEGORY_VARIANTS` (default first) mapped through
        `facs.AU_TO_BLENDSHAPES`; each shape's response k is the gain-weighted mean of its
        AUs' `facs.AU_RESPONSE`; VA anchors are `va.DEFAULT_VA_ANCHORS`.
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

    # ------------------------------------------------------------------ variants
    def variants(self, category: str) -> tuple[str, ...]:
        """The variant names of a category, default first.

        Raises:
            ValueError: a category this model does not have.
        """
        self._check_category(category, "variants")
        return tuple(v for c, v in self._variant_keys if c == category)

    def default_variant(self, category: str) -> str:
        """The category's default variant (what ``Expression(category)`` shows)."""
        return self.variants(category)[0]

    def _check_category(self, category: str, where: str) -> None:
        if category not in self._categories:
            raise ValueError(
                f"ExpressionModel.{where}: category {category!r} is not in this model (has {self._categories})"
            )

    def _row(self, target: Expression, where: str) -> int:
        self._check_category(target.name, where)
        variant = target.variant if target.variant is not None else self.default_variant(target.name)
        row = self._variant_row.get((target.name, variant))
        if row is None:
            raise ValueError(
                f"ExpressionModel.{where}: {target.name} has no variant {variant!r}; this model's "
                f"{target.name} variants are {self.variants(target.name)}"
            )
        return row

    def resolve_variant(self, target: Any, rng: np.random.Generator) -> Any:
        """The target with its variant fixed: a drawn one when it is None, else checked and kept.

        Draws uniformly over `variants` with exactly one ``rng.random()`` call per `Expression`
        target (also for one-variant categories and fixed variants, so later draws from the
        same generator do not depend on the target); other targets come back unchanged and
        draw nothing.

        Args:
            target: any target; only `Expression` has variants.
            rng: the numpy Generator to draw from.

        Returns:
            An `Expression` whose ``variant`` is set, or ``target`` itself.

        Raises:
            ValueError: a category or a fixed variant this model does not have (the message
                lists the valid variants).
        """
        if not isinstance(target, Expression):
            return target
        names = self.variants(target.name)
        k = min(int(rng.random() * len(names)), len(names) - 1)  # always one draw (integers(1) draws none)
        if target.variant is not None:
            self._row(target, "resolve_variant")
            return target
        return target.with_variant(names[k])

    def expression_va(self, target: Expression) -> tuple[float, float]:
        """(valence, arousal) where this model's VA map shows ``target``: its label.

        The exact inverse of the anchor VA map along the category's ray (see
        `affectsynth.blendshapes.va.expression_point`): the map shows category c at
        ``smoothstep(s)`` at ``s * anchor[c]``, so ``weights(VA(*expression_va(e)))`` equals
        ``weights(e)`` for the default variant (the VA map places default variants only; other
        variants get the same point, the place of their category and intensity). Neutral, and
        intensity 0, give the origin. A model with a binned VA grid (built from 4D data)
        answers VA targets from the grid, which has no exact inverse; the point is then the
        same anchor-map point (the category's mean apex VA scaled the same way).

        Args:
            target: an `Expression`.

        Returns:
            (valence, arousal), each in [-1, 1].

        Raises:
            TypeError: not an `Expression`.
            ValueError: a category this model does not have.

        Example:
            >>> m = ExpressionModel.default()
            >>> v, a = m.expression_va(Expression("happiness", 0.25))
            >>> round(math.hypot(v, a) / math.hypot(*m.va_anchors["happiness"]), 3)
            0.326
        """
        if not isinstance(target, Expression):
            raise TypeError(f"ExpressionModel.expression_va: expected an Expression, got {type(target).__name__}")
        self._check_category(target.name, "expression_va")
        anchor = self._anchors[self._categories.index(target.name)]
        return expression_point((float(anchor[0]), float(anchor[1])), target.intensity)

    # ------------------------------------------------------------------ mapping
    def weights_array(self, target: "Expression | VA | AUs") -> np.ndarray:
        """[S] float64 weights in [0, 1] in `names` order (see the class doc for the rules).

        Raises:
            TypeError: not a target.
            ValueError: a category, variant or AU this model does not have.
        """
        if isinstance(target, Expression):
            row = self._row(target, "weights")
            w = self.variant_prototypes[row] * intensity_response(target.intensity, self.variant_response[row])
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
        """Write an npz (no pickled objects): to a temp name beside ``path``, fsync'd, then
        ``os.replace``d, so a reader sees the old file or the complete new one.

        Args:
            path: the file to write (an existing one is replaced).

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
        arrays["variant_keys"] = np.array([f"{c}/{v}" for c, v in self._variant_keys], dtype=np.str_)
        arrays["variant_prototypes"] = self.variant_prototypes.astype(np.float32)
        arrays["variant_response"] = self.variant_response.astype(np.float32)
        buf = io.BytesIO()
        np.savez_compressed(buf, **arrays)
        atomic_write_bytes(path, buf.getvalue())
        return path

    @classmethod
    def load(cls, path: "str | os.PathLike[str]") -> "ExpressionModel":
        """Read a model written by `save` (or by `build_library_from_dir`).

        Raises:
            FileNotFoundError: no such file.
            ModelFileError: not an npz, a missing/ill-shaped array, or a newer format.

        Files of format 1 (before variants) load with one variant, "apex", per category.
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
                variants=_variants_from_arrays(data),
            )
        except (ValueError, TypeError) as e:
            raise ModelFileError(f"ExpressionModel.load: '{path}': {e}") from None

    def __repr__(self) -> str:
        grid = f", va_grid={self.va_grid.bins}x{self.va_grid.bins}" if self.va_grid is not None else ""
        return f"ExpressionModel(shapes={len(self.names)}, categories={self._categories}{grid})"


def resolve_variant(target: Any, rng: np.random.Generator, *, model: "ExpressionModel | None" = None) -> Any:
    """`ExpressionModel.resolve_variant` of ``model`` (default: the shipped model).

    Args:
        target: any target; an `Expression` with variant None gets one drawn.
        rng: the numpy Generator to draw from (one ``random()`` call per `Expression`).
        model: whose variants to draw from.

    Returns:
        The target with its variant set (non-expression targets unchanged).

    Raises:
        ValueError: a fixed variant the model does not have (lists the valid ones).

    Example:
        >>> resolve_variant(Expression("anger", 0.8, "open"), np.random.default_rng(0)).variant
        'open'
    """
    return (model or ExpressionModel.default()).resolve_variant(target, rng)


def _variants_from_arrays(data: Mapping[str, np.ndarray]) -> "dict[str, dict[str, tuple[np.ndarray, np.ndarray]]] | None":
    if "variant_keys" not in data:
        return None
    keys = [str(k) for k in data["variant_keys"]]
    protos, resps = data.get("variant_prototypes"), data.get("variant_response")
    if protos is None or resps is None or len(protos) != len(keys) or len(resps) != len(keys):
        raise ValueError("variant_keys, variant_prototypes and variant_response must have one row per variant")
    out: dict[str, dict[str, tuple[np.ndarray, np.ndarray]]] = {}
    for key, p, r in zip(keys, protos, resps):
        cat, sep, name = key.partition("/")
        if not sep:
            raise ValueError(f"variant key {key!r} must be 'category/variant'")
        out.setdefault(cat, {})[name] = (p, r)
    return out


def _au_arrays(units: Mapping[str, float], col: Mapping[str, int]) -> tuple[np.ndarray, np.ndarray]:
    """[S] apex weights and [S] response of one AU set (response: gain-weighted mean of its AUs')."""
    S = len(col)
    proto, kw, gw = np.zeros(S), np.zeros(S), np.zeros(S)
    for au, level in units.items():
        k_au = AU_RESPONSE.get(au.split("_")[0], AU_RESPONSE["default"])
        for shape, gain in AU_TO_BLENDSHAPES[au].items():
            s = col[shape]
            proto[s] += level * gain
            kw[s] += level * gain * k_au
            gw[s] += level * gain
    response = np.where(gw > 0, kw / np.maximum(gw, 1e-12), AU_RESPONSE["default"])
    return np.clip(proto, 0.0, 1.0), response


@lru_cache(maxsize=1)
def _default_model() -> ExpressionModel:
    col = {n: i for i, n in enumerate(ARKIT_NAMES)}
    variants = {c: {v: _au_arrays(aus, col) for v, aus in CATEGORY_VARIANTS[c].items()} for c in CATEGORIES}
    proto = np.array([next(iter(variants[c].values()))[0] for c in CATEGORIES])
    response = np.array([next(iter(variants[c].values()))[1] for c in CATEGORIES])
    anchors = np.array([DEFAULT_VA_ANCHORS[c] for c in CATEGORIES])
    return ExpressionModel(
        ARKIT_NAMES, CATEGORIES, proto, response, anchors, variants=variants,
        meta={"source": "affectsynth FACS default (EMFACS variants, facs.AU_TO_BLENDSHAPES)"},
    )
