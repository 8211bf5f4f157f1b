"""Blendshape basis: named per-vertex displacements that deform a mesh linearly."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Mapping, Sequence

import numpy as np
import torch

__all__ = ["BlendshapeBasis", "BasisError"]


class BasisError(ValueError):
    """Bad basis data or a shape mismatch against it (subclass of ValueError)."""


@dataclass(frozen=True)
class BlendshapeBasis:
    """Named blendshape deltas: ``vertices + sum_s w_s * deltas[s]``.

    Args:
        names: S unique blendshape names (e.g. the 53 ARKit names of ICT-FaceKit).
        deltas: [S, V, 3] float32 displacements in model space (cm for ICT-FaceKit) at
            weight 1 of each shape.

    Raises:
        BasisError: wrong shape/dtype, duplicate names, or a name count that does not match.
    """

    names: tuple[str, ...]
    deltas: torch.Tensor  # [S, V, 3] float32

    def __post_init__(self) -> None:
        names = tuple(self.names)
        if not all(isinstance(n, str) for n in names):
            raise TypeError("BlendshapeBasis: names must all be str")
        if len(set(names)) != len(names):
            dup = sorted({n for n in names if names.count(n) > 1})
            raise BasisError(f"BlendshapeBasis: names must be unique, got duplicates {dup}")
        d = self.deltas
        if not isinstance(d, torch.Tensor):
            raise TypeError(f"BlendshapeBasis: deltas must be a torch.Tensor, got {type(d).__name__}")
        if d.ndim != 3 or d.shape[2] != 3 or d.shape[0] != len(names):
            raise BasisError(
                f"BlendshapeBasis: deltas must be [S={len(names)}, V, 3], got {list(d.shape)}"
            )
        if d.dtype != torch.float32:
            raise BasisError(f"BlendshapeBasis: deltas must be float32, got {d.dtype}")
        object.__setattr__(self, "names", names)

    @classmethod
    def from_arrays(cls, names: Sequence[str], deltas: "np.ndarray | torch.Tensor") -> "BlendshapeBasis":
        """Build from a name list and an array-like [S, V, 3] (converted to float32)."""
        t = torch.as_tensor(np.asarray(deltas) if not isinstance(deltas, torch.Tensor) else deltas)
        return cls(tuple(str(n) for n in names), t.to(torch.float32))

    @property
    def num_shapes(self) -> int:
        """S, the number of blendshapes."""
        return len(self.names)

    @property
    def num_vertices(self) -> int:
        """V, the number of vertices."""
        return int(self.deltas.shape[1])

    @cached_property
    def _index(self) -> dict[str, int]:
        return {n: i for i, n in enumerate(self.names)}

    def index(self, name: str) -> int:
        """Position of ``name`` in `names`.

        Raises:
            KeyError: unknown name (the message lists a few known ones).
        """
        try:
            return self._index[name]
        except KeyError:
            raise KeyError(
                f"BlendshapeBasis.index: unknown blendshape {name!r}; known: {self.names[:5]}..."
            ) from None

    def weights_tensor(
        self,
        weights: Mapping[str, float],
        *,
        dtype: torch.dtype = torch.float32,
        device: "torch.device | str | None" = None,
        strict: bool = True,
    ) -> torch.Tensor:
        """Dense [S] weight vector in basis order from a name -> weight mapping.

        Args:
            weights: blendshape name -> weight; missing names are 0.
            dtype: of the result.
            device: of the result (default: the deltas' device).
            strict: raise on names the basis does not have (else they are ignored).

        Returns:
            [S] tensor.
        """
        out = torch.zeros(self.num_shapes, dtype=dtype, device=device or self.deltas.device)
        for name, w in weights.items():
            i = self._index.get(name)
            if i is None:
                if strict:
                    self.index(name)
                continue
            out[i] = float(w)
        return out

    def weights_dict(self, t: torch.Tensor) -> dict[str, float]:
        """Inverse of `weights_tensor`: [S] tensor -> {name: float}."""
        if t.ndim != 1 or t.shape[0] != self.num_shapes:
            raise BasisError(
                f"BlendshapeBasis.weights_dict: expected [{self.num_shapes}], got {list(t.shape)}"
            )
        return dict(zip(self.names, (float(x) for x in t.detach().cpu().tolist())))

    def apply(self, vertices: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """Deform vertices: ``vertices + sum_s weights[..., s] * deltas[s]``.

        Args:
            vertices: [B, V, 3] or [V, 3] float, model space.
            weights: [B, S] or [S] (B may be 1 to broadcast), same device.

        Returns:
            Same shape, dtype and device as ``vertices`` ([B, V, 3] if either input is batched).

        Raises:
            BasisError: V or S do not match the basis.
        """
        if vertices.ndim not in (2, 3) or vertices.shape[-1] != 3 or vertices.shape[-2] != self.num_vertices:
            raise BasisError(
                f"BlendshapeBasis.apply: vertices must be [B, {self.num_vertices}, 3] or "
                f"[{self.num_vertices}, 3], got {list(vertices.shape)}"
            )
        if weights.ndim not in (1, 2) or weights.shape[-1] != self.num_shapes:
            raise BasisError(
                f"BlendshapeBasis.apply: weights must be [B, {self.num_shapes}] or "
                f"[{self.num_shapes}], got {list(weights.shape)}"
            )
        deltas = self.deltas.to(device=vertices.device, dtype=vertices.dtype)
        w = weights.to(dtype=vertices.dtype)
        offset = torch.einsum("...s,svc->...vc", w, deltas)
        return vertices + offset

    def to(self, device: "torch.device | str") -> "BlendshapeBasis":
        """A copy with deltas on ``device``."""
        return BlendshapeBasis(self.names, self.deltas.to(device))

    def subset_vertices(self, idx: "Sequence[int] | np.ndarray | torch.Tensor") -> "BlendshapeBasis":
        """The basis restricted to vertices ``idx`` ([K] int), in that order."""
        i = torch.as_tensor(np.asarray(idx) if not isinstance(idx, torch.Tensor) else idx,
                            dtype=torch.long, device=self.deltas.device)
        if i.ndim != 1:
            raise BasisError(f"BlendshapeBasis.subset_vertices: idx must be 1-D, got {list(i.shape)}")
        if i.numel() and (int(i.min()) < 0 or int(i.max()) >= self.num_vertices):
            raise BasisError(
                f"BlendshapeBasis.subset_vertices: indices must be in [0, {self.num_vertices}), "
                f"got [{int(i.min())}, {int(i.max())}]"
            )
        return BlendshapeBasis(self.names, self.deltas.index_select(1, i).contiguous())

    def subset_shapes(self, names: Sequence[str]) -> "BlendshapeBasis":
        """The basis restricted to the named shapes, in that order."""
        idx = [self.index(n) for n in names]
        return BlendshapeBasis(tuple(names), self.deltas[idx].contiguous())
