"""The 3D morphable face model: neutral + identity modes + expression blendshapes, with landmark embeddings.

Model space is centimetres, +y up, +z towards the viewer, the subject's left is +x (ICT-FaceKit's axes).
The embedded default (``fitting/data/face_model.npz``) is built by ``scripts/build_face_model.py`` from
ICT-FaceKit (MIT) and MediaPipe's canonical face (Apache-2.0).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property, lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import Tensor

from affectsynth.blendshapes.basis import BlendshapeBasis
from affectsynth.render.mesh import vertex_normals

if TYPE_CHECKING:  # pragma: no cover
    from affectsynth.fitting.face_fit import FaceFit

__all__ = ["FaceModel", "LandmarkEmbedding", "DEFAULT_MODEL_PATH", "LANDMARK_KINDS"]

DEFAULT_MODEL_PATH = Path(__file__).resolve().parent / "data" / "face_model.npz"

#: Landmark layouts the model has embeddings for.
LANDMARK_KINDS = ("mediapipe468", "ibug68")

_REQUIRED = (
    "neutral", "identity_basis", "expression_basis", "expression_names", "triangles", "uv",
    "triangle_uv", "triangle_material", "material_names", "region_names", "region_vertex_range",
    "symmetry", "landmarks68",
)


@dataclass(frozen=True)
class LandmarkEmbedding:
    """Where each landmark of one layout sits on the model surface.

    Attributes:
        triangle: [N] int64 model triangle per landmark.
        barycentric: [N, 3] float32 weights of that triangle's corners.
        contour_bands: [N, M] int64 candidate vertices for silhouette landmarks (padded with -1);
            rows of non-contour landmarks are all -1. A contour landmark corresponds to whichever
            candidate is on the silhouette at the current pose.
        fit_subset: [N'] int64 landmarks the fitter uses (all of them when None).
    """

    triangle: Tensor
    barycentric: Tensor
    contour_bands: Tensor
    fit_subset: Tensor | None = None

    @property
    def num_landmarks(self) -> int:
        return int(self.triangle.shape[0])

    @cached_property
    def is_contour(self) -> Tensor:
        """[N] bool: landmark lies on the face silhouette."""
        return (self.contour_bands >= 0).any(1)

    def to(self, device: torch.device | str) -> "LandmarkEmbedding":
        subset = None if self.fit_subset is None else self.fit_subset.to(device)
        return LandmarkEmbedding(self.triangle.to(device), self.barycentric.to(device), self.contour_bands.to(device), subset)


class FaceModel:
    """A linear face model: ``v = neutral + identity_basis * identity + expressions(weights)``.

    Build once and pass around (it holds ~60 MB of float32 bases): ``FaceModel.default()`` caches the
    embedded model per device.

    Attributes:
        neutral: [V, 3] float32, cm.
        identity_basis: [K, V, 3] float32 sigma-scaled modes (coefficients ~N(0, 1)).
        expressions: `BlendshapeBasis` of the 53 ARKit-named shapes (weights in [0, 1]).
        triangles: [T, 3] int32; uv: [U, 2] float32; triangle_uv: [T, 3] int32;
        triangle_material: [T] int64 into `material_names`; symmetry: [V] int64 mirror vertex.
    """

    _default_cache: dict[str, "FaceModel"] = {}

    def __init__(self, arrays: dict[str, np.ndarray], *, device: torch.device | str = "cpu", source: str = "<arrays>"):
        missing = [k for k in _REQUIRED if k not in arrays]
        if missing:
            raise ValueError(f"FaceModel: {source} lacks arrays {missing}")
        dev = torch.device(device)
        f32 = dict(dtype=torch.float32, device=dev)
        self.source = source
        self.device = dev
        self.neutral = torch.as_tensor(arrays["neutral"], **f32)
        self.identity_basis = torch.as_tensor(arrays["identity_basis"].astype(np.float32), **f32)
        self.expressions = BlendshapeBasis(
            names=tuple(str(n) for n in arrays["expression_names"]),
            deltas=torch.as_tensor(arrays["expression_basis"].astype(np.float32), **f32),
        )
        self.triangles = torch.as_tensor(arrays["triangles"], dtype=torch.int32, device=dev)
        self.uv = torch.as_tensor(arrays["uv"], **f32)
        self.triangle_uv = torch.as_tensor(arrays["triangle_uv"], dtype=torch.int32, device=dev)
        self.triangle_material = torch.as_tensor(arrays["triangle_material"].astype(np.int64), device=dev)
        self.material_names = tuple(str(n) for n in arrays["material_names"])
        self.region_names = tuple(str(n) for n in arrays["region_names"])
        self.region_vertex_range = {
            name: (int(a), int(b)) for name, (a, b) in zip(self.region_names, arrays["region_vertex_range"])
        }
        self.symmetry = torch.as_tensor(arrays["symmetry"].astype(np.int64), device=dev)
        self.landmarks68 = torch.as_tensor(arrays["landmarks68"].astype(np.int64), device=dev)
        self._embeddings: dict[str, LandmarkEmbedding] = {}
        for kind, prefix in (("mediapipe468", "mediapipe"), ("ibug68", "ibug68")):
            if f"{prefix}_triangle" in arrays:
                self._embeddings[kind] = LandmarkEmbedding(
                    triangle=torch.as_tensor(arrays[f"{prefix}_triangle"].astype(np.int64), device=dev),
                    barycentric=torch.as_tensor(arrays[f"{prefix}_barycentric"], **f32),
                    contour_bands=torch.as_tensor(arrays[f"{prefix}_contour_bands"].astype(np.int64), device=dev),
                    fit_subset=(
                        torch.as_tensor(arrays[f"{prefix}_fit_subset"].astype(np.int64), device=dev)
                        if f"{prefix}_fit_subset" in arrays else None
                    ),
                )

    # ----------------------------------------------------------------------------- construction
    @classmethod
    def load(cls, path: str | Path, *, device: torch.device | str = "cpu") -> "FaceModel":
        """Load a model npz written by ``scripts/build_face_model.py`` (never unpickles)."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"FaceModel.load: no such file '{path}'")
        try:
            with np.load(path, allow_pickle=False) as data:
                arrays = {k: data[k] for k in data.files}
        except (OSError, ValueError) as exc:
            raise ValueError(f"FaceModel.load: '{path}' is not a readable model npz ({exc})") from exc
        return cls(arrays, device=device, source=str(path))

    @classmethod
    def default(cls, device: torch.device | str = "cpu") -> "FaceModel":
        """The embedded ICT-FaceKit-based model, loaded once per device."""
        key = str(torch.device(device))
        if key not in cls._default_cache:
            if not DEFAULT_MODEL_PATH.is_file():
                raise FileNotFoundError(
                    f"FaceModel.default: embedded model missing at '{DEFAULT_MODEL_PATH}'; "
                    "rebuild it with scripts/build_face_model.py"
                )
            cls._default_cache[key] = cls.load(DEFAULT_MODEL_PATH, device=device)
        return cls._default_cache[key]

    # ----------------------------------------------------------------------------- properties
    @property
    def num_vertices(self) -> int:
        return int(self.neutral.shape[0])

    @property
    def num_identity(self) -> int:
        return int(self.identity_basis.shape[0])

    @property
    def num_expressions(self) -> int:
        return self.expressions.num_shapes

    @property
    def expression_names(self) -> tuple[str, ...]:
        return self.expressions.names

    def embedding(self, kind: str) -> LandmarkEmbedding:
        """Landmark embedding of one layout (see `LANDMARK_KINDS`)."""
        if kind not in self._embeddings:
            raise ValueError(f"FaceModel.embedding: expected one of {sorted(self._embeddings)}, got {kind!r}")
        return self._embeddings[kind]

    def region(self, name: str) -> tuple[int, int]:
        """Half-open vertex range [start, end) of a region ('face', 'mouth_socket', 'gums_and_tongue', 'teeth')."""
        if name not in self.region_vertex_range:
            raise ValueError(f"FaceModel.region: expected one of {list(self.region_vertex_range)}, got {name!r}")
        return self.region_vertex_range[name]

    def material_mask(self, *names: str) -> Tensor:
        """[T] bool: triangles whose material is one of `names` (e.g. 'M_Face', 'M_Teeth')."""
        ids = []
        for n in names:
            if n not in self.material_names:
                raise ValueError(f"FaceModel.material_mask: expected one of {self.material_names}, got {n!r}")
            ids.append(self.material_names.index(n))
        return torch.isin(self.triangle_material, torch.tensor(ids, device=self.device))

    # ----------------------------------------------------------------------------- evaluation
    def vertices(self, identity: Tensor, expression: Tensor | None = None) -> Tensor:
        """Model-space vertices for batched coefficients.

        Args:
            identity: [B, K'] or [K'] float coefficients (K' <= K; missing modes are zero).
            expression: [B, 53] or [53] blendshape weights, or None for the neutral expression.

        Returns:
            [B, V, 3] (or [V, 3] for unbatched input) float32 vertices in cm, model space.
        """
        unbatched = identity.dim() == 1
        ident = identity[None] if unbatched else identity
        if ident.shape[-1] > self.num_identity:
            raise ValueError(f"FaceModel.vertices: identity must have <= {self.num_identity} coefficients, got {ident.shape[-1]}")
        verts = self._identity_shape(ident).reshape(ident.shape[0], -1, 3)
        if expression is not None:
            expr = expression[None] if expression.dim() == 1 else expression
            verts = self.expressions.apply(verts, expr.to(verts.dtype))
        else:
            verts = verts.clone()  # never hand out the cached identity shape itself
        return verts[0] if unbatched else verts

    def _identity_shape(self, ident: Tensor) -> Tensor:
        """[B, V * 3] ``neutral + identity @ basis``; cached for the last few single faces.

        Every target of one face starts from the same identity shape (a [K] x [K, V * 3] product,
        ~0.7 ms here): a single face's shape is kept, keyed by its coefficients' bytes. Batched
        or differentiable coefficients (the fitter) are computed as before.
        """
        basis = self.identity_basis[: ident.shape[-1]].reshape(ident.shape[-1], -1)
        if ident.shape[0] != 1 or ident.requires_grad:
            return self.neutral.reshape(1, -1) + ident.to(basis.dtype) @ basis
        key = (ident.detach().cpu().numpy().tobytes(), str(ident.dtype), ident.shape[-1])
        cache = self.__dict__.setdefault("_identity_cache", {})
        hit = cache.get(key)
        if hit is None:
            hit = self.neutral.reshape(1, -1) + ident.to(basis.dtype) @ basis
            if len(cache) >= 8:
                cache.pop(next(iter(cache)))
            cache[key] = hit
        return hit

    def reconstruct(self, fit: "FaceFit", *, expression: Tensor | None = None, neutral: bool = False) -> Tensor:
        """Camera-space vertices of a fitted face: ``rotation @ vertices(identity, expression) + translation``.

        Args:
            fit: a fit made with this model.
            expression: [S] weights to use instead of the fitted ones.
            neutral: zero expression (the neutral reconstruction of the same identity and pose).

        Returns:
            [V, 3] float32 camera-space vertices (cm, OpenCV axes), on the model's device. On the
            CPU with float32 inputs none of which requires grad, one compiled pass computes them
            (the blendshapes of nonzero weight only; the same sums up to float rounding).

        Raises:
            ValueError: both ``expression`` and ``neutral`` given.
        """
        if neutral and expression is not None:
            raise ValueError("FaceModel.reconstruct: give either expression or neutral=True, not both")
        dev = self.device
        weights = torch.zeros_like(fit.expression) if neutral else (fit.expression if expression is None else expression)
        parts = (fit.identity, weights, fit.rotation, fit.translation)
        grad = torch.is_grad_enabled() and any(t.requires_grad for t in parts)
        # a single face with a full weight vector; anything else takes the torch path (and its errors)
        single = fit.identity.dim() == 1 and fit.identity.shape[0] <= self.num_identity and weights.shape == (self.num_expressions,)
        if dev.type == "cpu" and single and not grad and all(t.device.type == "cpu" and t.dtype == torch.float32 for t in parts):
            from affectsynth.fitting._model_kernels import posed_vertices  # noqa: PLC0415  (numba import is slow)

            out = torch.empty(self.num_vertices, 3)
            shape = self._identity_shape(fit.identity[None])[0]
            posed_vertices(shape.numpy(), self.expressions.deltas.reshape(self.num_expressions, -1).numpy(),
                           weights.contiguous().numpy(), fit.rotation.contiguous().numpy(),
                           fit.translation.contiguous().numpy(), out.numpy())
            return out
        verts = self.vertices(fit.identity.to(dev), weights.to(dev))
        return verts @ fit.rotation.to(dev).T + fit.translation.to(dev)

    @cached_property
    def neutral_normals(self) -> Tensor:
        """[V, 3] unit vertex normals of the neutral mesh (model space, pointing out of the face)."""
        return vertex_normals(self.neutral, self.triangles)

    def landmark_points(self, vertices: Tensor, kind: str) -> Tensor:
        """Landmark positions on a mesh: [B, V, 3] -> [B, N, 3] via the kind's barycentric embedding."""
        emb = self.embedding(kind)
        return (vertices[..., self._landmark_corners(kind), :] * emb.barycentric[..., None]).sum(-2)

    def _landmark_corners(self, kind: str) -> Tensor:
        """[N, 3] int64 vertex indices of the triangles a layout's landmarks sit on, computed once
        per (layout, device): every output's landmarks read them (converting the whole triangle
        list to int64 per call cost more than the landmarks themselves)."""
        cache = self.__dict__.setdefault("_corner_cache", {})
        key = (kind, str(self.device))  # `to()` shares this dict with the copy: the device keeps them apart
        hit = cache.get(key)
        if hit is None:
            hit = cache[key] = self.triangles.long()[self.embedding(kind).triangle]
        return hit

    def landmark_basis(self, kind: str) -> tuple[Tensor, Tensor, Tensor]:
        """Linear landmark model: (mean [N, 3], identity [K, N, 3], expression [S, N, 3]).

        The fitter works on these small bases instead of the full mesh.
        """
        return _landmark_basis(self, kind)

    def to(self, device: torch.device | str) -> "FaceModel":
        """A copy of the model on another device."""
        if torch.device(device) == self.device:
            return self
        new = object.__new__(FaceModel)
        for k, v in self.__dict__.items():
            if isinstance(v, Tensor):
                v = v.to(device)
            elif isinstance(v, (BlendshapeBasis, LandmarkEmbedding)):
                v = v.to(device)
            elif k == "_embeddings":
                v = {kk: e.to(device) for kk, e in v.items()}
            new.__dict__[k] = v
        new.device = torch.device(device)
        return new

    def __repr__(self) -> str:
        return (
            f"FaceModel(vertices={self.num_vertices}, triangles={int(self.triangles.shape[0])}, "
            f"identity={self.num_identity}, expressions={self.num_expressions}, source={self.source!r})"
        )


@lru_cache(maxsize=16)
def _landmark_basis(model: FaceModel, kind: str) -> tuple[Tensor, Tensor, Tensor]:
    """`FaceModel.landmark_basis`, built once per model and layout."""
    emb = model.embedding(kind)
    corners = model.triangles.long()[emb.triangle]
    w = emb.barycentric[..., None]

    def at(x: Tensor) -> Tensor:
        return (x[..., corners, :] * w).sum(-2)

    return at(model.neutral), at(model.identity_basis), at(model.expressions.deltas)
