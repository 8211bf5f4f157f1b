"""`AffectAugment`: a dataloader transform that re-renders a face with a new expression and relabels it.

Sample, then apply (kornia ``forward_parameters`` / albumentations ``get_params``)::

    aug = AffectAugment(targets=("happiness", "surprise"), p=0.5, seed=0, label_preset="fer2013")
    out = aug(sample)                          # image, (image, label) or {"image", "label", ...}
    same = aug.apply(sample, aug.last_params)  # exact replay

Reproducibility: an item's draw depends only on (``seed``, the image's content digest, the
epoch set by :meth:`AffectAugment.set_epoch`), never on worker count, order or global RNGs.
Fits are cached by content digest: an in-memory LRU (``cache`` entries, per process) and
optionally JSON files in ``cache_dir`` (shared by processes, written atomically).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from affectsynth.atomic import atomic_write_text
from affectsynth.cache import LRUCache, image_digest
from affectsynth.images import restore_like, to_numpy_image
from affectsynth.labels import LabelPreset, UnsupportedTargetError, canonical_category, get_preset
from affectsynth.recover import reset_detector

__all__ = ["AffectAugment", "AugmentParams", "image_digest"]

_CACHE_VERSION = 1


@dataclass(frozen=True)
class AugmentParams:
    """One item's draw.

    Attributes:
        apply: whether the item is re-rendered (probability ``p``).
        target: the drawn ``affectsynth.blendshapes`` `Expression` / `VA` / `AUs` target.
        seed: synthesis seed (``rng_seed`` of ``Synthesizer.synthesize``).
        digest: content digest of the image (see :func:`image_digest`).
        epoch: the epoch the draw was made in.
    """

    apply: bool
    target: Any
    seed: int
    digest: str
    epoch: int


_VA_RANDOM = "va"


class AffectAugment:
    """Re-render the face in an image with a randomly drawn expression and rewrite its label.

    Args:
        targets: what to draw from (uniformly): category names or aliases (intensity drawn
            from ``intensity``), target objects (`Expression`, `VA`, `AUs`; used as given), or
            the string ``"va"``: a VA point drawn uniformly (by area) from the annulus with radius
            in ``intensity``, at a uniform angle. Default: the 6 non-neutral categories FER2013 has
            (contempt needs ``label_preset="affectnet"``).
        p: probability that an item is re-rendered; others pass through untouched.
        seed: base seed of all draws.
        intensity: a float or a (low, high) range in [0, 1] for category targets (and the VA radius).
        label_preset: how labels are rewritten: "fer2013" / "affectnet" (class index in that
            dataset's order, see `affectsynth.labels`), "va" (float32 tensor [2] = valence,
            arousal), or None (labels are left unchanged). Targets the preset cannot express
            (contempt with "fer2013"; VA targets with a class preset; AUs with any preset) are
            refused here, at construction.
        cache: size of the in-memory LRU of fits (0 disables it).
        cache_dir: folder for an on-disk fit cache (JSON per image digest), or None.
        synthesizer: a ``Synthesizer`` to use; default: ``Synthesizer(**synthesizer_kwargs)``
            built on first use. It is never pickled: a copy in a DataLoader worker (spawn)
            builds its own from ``synthesizer_kwargs``.
        synthesizer_kwargs: keyword arguments of that lazy construction (e.g.
            ``{"expressions": "lib.npz"}``).

    Attributes:
        stats: per-process counters: "applied", "passed" (not drawn), "unfitted" (no face: passed
            through with the original label), "rejected" (a face the synthesizer's gates refuse,
            `Synthesizer.check`: passed through), "failed" (synthesis raised: passed through),
            "cache_hits", "disk_hits", "fits". DataLoader workers count in their own copies.
        last_params: the :class:`AugmentParams` of the last call.
        last_error: one line describing the last "failed" item, or None.

    Raises:
        ValueError: bad p, intensity, targets, or a target the label preset cannot express.

    Example:
        >>> aug = AffectAugment(("happiness", "surprise"), p=0.0, seed=0)
        >>> import numpy as np
        >>> img = np.zeros((8, 8, 3), np.uint8)
        >>> out, label = aug((img, 3))
        >>> out is img, label, aug.last_params.apply
        (True, 3, False)
    """

    def __init__(self, targets: Sequence[Any] | str = ("happiness", "sadness", "surprise", "fear", "anger",
                                                       "disgust"),
                 p: float = 0.5, seed: int = 0, intensity: float | tuple[float, float] = (0.5, 1.0), *,
                 label_preset: str | LabelPreset | None = "fer2013", cache: int = 1024,
                 cache_dir: str | os.PathLike | None = None, synthesizer: Any = None,
                 synthesizer_kwargs: dict | None = None) -> None:
        if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0.0 <= p <= 1.0:
            raise ValueError(f"AffectAugment: p must be in [0, 1], got {p!r}")
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
            raise TypeError(f"AffectAugment: seed must be an int, got {type(seed).__name__}")
        lo, hi = (intensity, intensity) if isinstance(intensity, (int, float)) else tuple(intensity)
        if not (0.0 <= lo <= hi <= 1.0):
            raise ValueError(f"AffectAugment: intensity must be a value or (low, high) within [0, 1], got {intensity!r}")
        if isinstance(cache, bool) or not isinstance(cache, int) or cache < 0:
            raise ValueError(f"AffectAugment: cache must be an int >= 0, got {cache!r}")
        self.p = float(p)
        self.seed = int(seed)
        self.intensity = (float(lo), float(hi))
        self.preset = None if label_preset is None else get_preset(label_preset)
        self.cache = cache
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self.synthesizer_kwargs = dict(synthesizer_kwargs or {})
        self._synthesizer = synthesizer
        self._templates = self._parse_targets(targets)
        self.epoch = 0
        self._lru: LRUCache[Any] = LRUCache(cache)
        self.stats: dict[str, int] = dict.fromkeys(
            ("applied", "passed", "unfitted", "rejected", "failed", "cache_hits", "disk_hits", "fits"), 0)
        self.last_params: AugmentParams | None = None
        self.last_error: str | None = None

    # ------------------------------------------------------------------ construction
    def _parse_targets(self, targets: Sequence[Any] | str) -> list[tuple[str, Any]]:
        from affectsynth.blendshapes.targets import VA, Expression

        if isinstance(targets, str):
            targets = [targets]
        out: list[tuple[str, Any]] = []
        for t in targets:
            if isinstance(t, str) and t.lower() == _VA_RANDOM:
                out.append(("va", None))
                probe: Any = VA(0.0, 0.0)
            elif isinstance(t, str):
                name = canonical_category(t)
                out.append(("category", name))
                probe = Expression(name, 1.0)
            elif getattr(t, "kind", None) in ("expression", "va", "aus"):
                out.append(("fixed", t))
                probe = t
            else:
                raise ValueError(f"AffectAugment: targets must be category names, 'va', or Expression/VA/AUs "
                                 f"objects, got {t!r}")
            if self.preset is not None:
                self.preset.check_target(probe)
        if not out:
            raise ValueError("AffectAugment: expected at least one target, got none")
        return out

    def __repr__(self) -> str:
        names = [v if k == "category" else ("va" if k == "va" else repr(v)) for k, v in self._templates]
        preset = self.preset.name if self.preset else None
        return (f"AffectAugment(targets={names}, p={self.p}, seed={self.seed}, intensity={self.intensity}, "
                f"label_preset={preset!r}, cache={self.cache}, cache_dir={self.cache_dir})")

    # ------------------------------------------------------------------ pickling
    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_synthesizer"] = None  # rebuilt lazily in the receiving process
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)

    # ------------------------------------------------------------------ epoch
    def set_epoch(self, epoch: int) -> None:
        """Set the epoch that enters every item's draw (call it before each epoch, as with
        ``DistributedSampler``; with ``persistent_workers=True`` workers keep their copy's epoch)."""
        self.epoch = int(epoch)

    # ------------------------------------------------------------------ sampling
    @staticmethod
    def _split(sample: Any) -> tuple[Any, Any, Callable[[Any, Any], Any]]:
        if isinstance(sample, dict):
            if "image" not in sample:
                raise KeyError("AffectAugment: dict samples need an 'image' key")

            def rebuild_dict(img: Any, lab: Any) -> dict:
                out = dict(sample)
                out["image"] = img
                if "label" in sample:
                    out["label"] = lab
                return out

            return sample["image"], sample.get("label"), rebuild_dict
        if isinstance(sample, (tuple, list)):
            if len(sample) != 2:
                raise ValueError(f"AffectAugment: sequence samples must be (image, label), got length {len(sample)}")
            kind = type(sample)
            return sample[0], sample[1], lambda img, lab: kind((img, lab))
        return sample, None, lambda img, lab: img

    def _draw(self, digest: str) -> AugmentParams:
        from affectsynth.blendshapes.targets import VA, Expression

        entropy = int.from_bytes(hashlib.blake2b(f"{self.seed}|{digest}|{self.epoch}".encode(),
                                                 digest_size=16).digest(), "little")
        rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence(entropy)))
        u_apply, u_pick, u_a, u_b = rng.random(4)
        synth_seed = int(rng.integers(0, 2**63 - 1))
        kind, value = self._templates[min(int(u_pick * len(self._templates)), len(self._templates) - 1)]
        lo, hi = self.intensity
        if kind == "category":
            target: Any = Expression(value, round(lo + (hi - lo) * float(u_a), 4))
        elif kind == "va":
            r = math.sqrt(lo * lo + (hi * hi - lo * lo) * float(u_a))
            ang = 2.0 * math.pi * float(u_b)
            target = VA(round(max(-1.0, min(1.0, r * math.cos(ang))), 4), round(max(-1.0, min(1.0, r * math.sin(ang))), 4))
        else:
            target = value
        return AugmentParams(bool(u_apply < self.p), target, synth_seed, digest, self.epoch)

    def sample_params(self, sample: Any) -> AugmentParams:
        """Draw the parameters for one item (an image, an (image, label) pair or a dict).

        Depends only on ``seed``, the image content and the epoch.
        """
        image, _, _ = self._split(sample)
        return self._draw(image_digest(to_numpy_image(image)))

    def __call__(self, sample: Any) -> Any:
        """Draw parameters for ``sample`` and apply them; returns the same structure."""
        image, _, _ = self._split(sample)
        arr = to_numpy_image(image)
        digest = image_digest(arr)
        return self._apply(sample, self._draw(digest), arr, digest)

    # ------------------------------------------------------------------ applying
    def _get_synthesizer(self) -> Any:
        if self._synthesizer is None:
            from affectsynth.synthesizer import Synthesizer

            self._synthesizer = Synthesizer(**self.synthesizer_kwargs)
        return self._synthesizer

    def _disk_path(self, digest: str) -> Path | None:
        return None if self.cache_dir is None else self.cache_dir / digest[:2] / f"{digest}.json"

    def _remember(self, digest: str, fit: Any) -> None:
        if self.cache <= 0:
            return
        self._lru[digest] = fit

    def fit_for(self, image: np.ndarray, digest: str | None = None) -> Any:
        """The largest face's fit for an ``[H, W, 3] uint8`` image, or None if no face (cached).

        Raises:
            Exception: whatever ``Synthesizer.fit`` raises (not cached).
        """
        digest = digest or image_digest(image)
        if digest in self._lru:
            self.stats["cache_hits"] += 1
            return self._lru.get(digest)
        path = self._disk_path(digest)
        if path is not None and path.is_file():
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
                faces = data["faces"] if data.get("version") == _CACHE_VERSION else None
            except (OSError, ValueError, KeyError, TypeError):
                faces = None  # unreadable cache entry: refit and overwrite
            if faces is not None:
                fit = None
                if faces:
                    from affectsynth.fitting.face_fit import FaceFit

                    fit = FaceFit.from_dict(faces[0])
                self.stats["disk_hits"] += 1
                self._remember(digest, fit)
                return fit
        fits = list(self._get_synthesizer().fit(image))
        self.stats["fits"] += 1
        fit = fits[0] if fits else None
        self._remember(digest, fit)
        if path is not None:
            atomic_write_text(path, json.dumps({"version": _CACHE_VERSION, "digest": digest,
                                                "faces": [fit.to_dict()] if fit is not None else []}),
                              fsync=False)
        return fit

    def apply(self, sample: Any, params: AugmentParams) -> Any:
        """Apply drawn parameters to a sample; returns the same structure (image type/layout kept).

        Items with ``params.apply`` False, without a face, or whose synthesis raises are returned
        unchanged (the same object) with their original label and counted in :attr:`stats`.
        """
        return self._apply(sample, params, None, None)

    def _apply(self, sample: Any, params: AugmentParams, arr: np.ndarray | None, digest: str | None) -> Any:
        self.last_params = params
        if not params.apply:
            self.stats["passed"] += 1
            return sample
        image, label, rebuild = self._split(sample)
        if arr is None:
            arr = to_numpy_image(image)
        if digest is None:
            digest = image_digest(arr)
        try:
            fit = self.fit_for(arr, digest)
        except Exception as e:  # a bad item must not stop training (STYLE 5)
            self.stats["failed"] += 1
            self.last_error = f"fit: {type(e).__name__}: {' '.join(str(e).split())}"
            reset_detector(self._synthesizer)  # nor poison the detector for the items after it
            return sample
        if fit is None:
            self.stats["unfitted"] += 1
            return sample
        rejection = self._get_synthesizer().check(fit)
        if rejection is not None:  # the engine's face gates: the same faces `generate` skips
            self.stats["rejected"] += 1
            self.last_error = f"check: {rejection}"
            return sample
        try:
            res = self._get_synthesizer().synthesize(arr, params.target, fit=fit, rng_seed=params.seed)
        except Exception as e:  # a bad item must not stop training (STYLE 5)
            self.stats["failed"] += 1
            self.last_error = f"synthesize: {type(e).__name__}: {' '.join(str(e).split())}"
            return sample
        self.stats["applied"] += 1
        new_image = restore_like(image, np.asarray(res.image))
        new_label = self.rewrite_label(label, params.target, res.labels)
        return rebuild(new_image, new_label)

    def rewrite_label(self, label: Any, target: Any, labels: Any = None) -> Any:
        """The new label for a synthesised item (see ``label_preset``); keeps a tensor/numpy label's type.

        Args:
            label: the original label (int, numpy scalar/array, tensor, or None).
            target: the synthesised target.
            labels: the synthesis labels (`affectsynth.result.SynthLabels`); for "va" their
                target's valence / arousal; without them, where this transform's synthesizer's
                expression model puts the target.

        Raises:
            UnsupportedTargetError: a VA label for a target the model places nowhere (AUs).
        """
        if self.preset is None:
            return label
        if self.preset.kind == "class":
            idx = self.preset.index_of(target.name)
            return _like(label, idx, integer=True)
        fields = labels.target if labels is not None else self._get_synthesizer().target_labels(target)
        if fields.valence is None or fields.arousal is None:
            raise UnsupportedTargetError(f"AffectAugment: target {fields.text()!r} has no valence-arousal label")
        return _like(label, [fields.valence, fields.arousal], integer=False)


def _like(label: Any, value: Any, *, integer: bool) -> Any:
    """``value`` in the container type of ``label`` (tensor, numpy, or plain Python / float32 tensor for VA)."""
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(label, torch.Tensor):
        dtype = label.dtype if (integer == (not label.dtype.is_floating_point)) else (
            torch.int64 if integer else torch.float32)
        return torch.tensor(value, dtype=dtype, device=label.device)
    if isinstance(label, (np.ndarray, np.generic)):
        return np.asarray(value, dtype=label.dtype if integer == (label.dtype.kind in "iu") else
                          (np.int64 if integer else np.float32))
    if integer:
        return int(value)
    import torch as _torch

    return _torch.tensor(value, dtype=_torch.float32)
