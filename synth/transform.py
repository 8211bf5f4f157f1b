"""`AffectAugment`: a dataloader transform that re-renders a face with a new expression and relabels it.

Sample, then apply (kornia ``forward_parameters`` / albumentations ``get_params``)::

    aug = AffectAugment(targets=("happiness", "surprise"), p=0.5, seed=0, label_preset="fer2013")
    out = aug(sample)                          # (image, label), {"image", "label", "keypoints", ...}
    out = aug(image, label)                    # torchvision v2.Compose's call: a tuple back
    out = aug(image=..., label=..., keypoints=...)  # albumentations' call: a dict back
    same = aug.apply(sample, aug.last_params)  # exact replay

Labels are never left silently wrong: a call without a label raises `MissingLabelError` unless
``rewrite_labels=False``. Keypoints move with the face (`affectsynth.keypoints`). A
``[B, C, H, W]`` tensor is augmented item by item (``same_on_batch`` for one draw).

Reproducibility: an item's draw depends only on (``seed``, the image's content digest, the
epoch set by :meth:`AffectAugment.set_epoch`), never on worker count, order or global RNGs. The
epoch is shared memory, so DataLoader workers (persistent ones too) see ``set_epoch``.
Fits are cached by content digest: an in-memory LRU (``cache`` entries, per process) and
optionally JSON files in ``cache_dir`` (shared by processes, written atomically).

Fork safety: a process forked from one that has synthesised (a ``fork`` DataLoader worker)
inherits the Synthesizer's state mid-flight (detector, renderer, texture caches, torch's thread
pools). An ``os.register_at_fork`` hook drops every live transform's Synthesizer in the child and
sets ``torch.set_num_threads(1)`` there, so each forked worker builds its own on first use, as a
spawned one does; the fit LRU (plain tensors, the same in every process) is kept.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import sys
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from affectsynth.atomic import atomic_write_text
from affectsynth.cache import LRUCache, image_digest
from affectsynth.images import restore_like, to_numpy_image
from affectsynth.keypoints import move_points
from affectsynth.labels import LabelPreset, UnsupportedTargetError, canonical_category, get_preset
from affectsynth.recover import reset_detector
from affectsynth.tv import is_tv_tensor, tv_kind, wrap_like

__all__ = ["AffectAugment", "AugmentParams", "MissingLabelError", "image_digest"]

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

#: Dict keys whose values are keypoints ([N, 2+] pixel x, y; albumentations' and our names).
_KEYPOINT_KEYS = ("keypoints", "landmarks")


class MissingLabelError(TypeError):
    """An expression-changing call that cannot return the rewritten label (an image without its label)."""


class _NoLabel:
    def __repr__(self) -> str:
        return "<no label>"


_NO_LABEL = _NoLabel()


@dataclasses.dataclass
class _Parts:
    """A sample taken apart: image (or [B, C, H, W] batch), label or `_NO_LABEL`, keypoint entries."""

    image: Any
    label: Any
    points: dict
    rebuild: Callable[[Any, Any, dict], Any]
    batched: bool = False


def _is_batch(image: Any) -> bool:
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(image, torch.Tensor) and image.ndim == 4


def _one_sample(inputs: tuple, named: dict) -> Any:
    if named and inputs:
        raise TypeError("AffectAugment: pass a sample positionally or as keywords (image=..., label=...), not both")
    if named:
        return dict(named)
    if len(inputs) == 1:
        return inputs[0]
    if len(inputs) == 2:
        return tuple(inputs)
    raise TypeError(f"AffectAugment: expected a sample, (image, label) or keywords, got {len(inputs)} arguments")


def _move_container(points: Any, src: np.ndarray, dst: np.ndarray, margin_px: float) -> Any:
    """Keypoints in any container (numpy / tensor / tv KeyPoints [N, 2+], list of tuples) moved with the face."""
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(points, torch.Tensor):
        a = points.detach().cpu().numpy().astype(np.float64)
    else:
        a = np.asarray(points, dtype=np.float64)
    if a.ndim != 2 or a.shape[1] < 2:
        raise ValueError(f"AffectAugment: keypoints must be [N, 2+] (x, y, ...) pixels, got shape {list(a.shape)}")
    out = a.copy()
    out[:, :2] = move_points(a[:, :2], src, dst, margin_px=margin_px)
    if torch is not None and isinstance(points, torch.Tensor):
        t = torch.from_numpy(out).to(dtype=points.dtype if points.dtype.is_floating_point else torch.float32,
                                      device=points.device)
        return wrap_like(t, points)
    if isinstance(points, np.ndarray):
        return out.astype(points.dtype if points.dtype.kind == "f" else np.float64)
    return [type(p)(float(v) for v in row) if isinstance(p, (tuple, list)) else tuple(float(v) for v in row)
            for p, row in zip(points, out.tolist())]


def _stack_like(original: Any, items: list) -> Any:
    """Per-item values of a batch back in ``original``'s container (tensor, numpy, list)."""
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(original, torch.Tensor):
        return wrap_like(torch.stack([torch.as_tensor(x, device=original.device) for x in items]), original)
    if isinstance(original, np.ndarray):
        return np.stack([np.asarray(x) for x in items])
    return type(original)(items) if isinstance(original, (list, tuple)) else list(items)


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
            dataset's order, see `affectsynth.labels`), a `LabelPreset` in your dataset's own index
            space (``LabelPreset.from_class_to_idx(ds.class_to_idx)`` for an ``ImageFolder``,
            ``LabelPreset.from_class_label(ds.features["label"])`` for Hugging Face), or "va"
            (float32 tensor [2] = valence, arousal). Targets the preset cannot express (contempt
            with "fer2013"; VA targets with a class preset; AUs with any preset) are refused here,
            at construction.
        rewrite_labels: False keeps every label as given (the preset is then ignored, and an
            image-only call is allowed): say so only when the labels do not describe the
            expression. With True (default), a call without a label raises `MissingLabelError`.
        same_on_batch: for ``[B, C, H, W]`` batches, one draw for all items (as kornia's
            ``same_on_batch``); default: a draw per item, from its content and index.
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
        last_params: the :class:`AugmentParams` of the last call (a tuple of them for a batch).
        last_labels: the `affectsynth.result.SynthLabels` of the last re-rendered item (final
            weights, the frozen shapes, output landmarks), or None.
        last_error: one line describing the last "failed" item, or None.
        epoch: the epoch set by `set_epoch`, held in shared memory: DataLoader workers, including
            ``persistent_workers=True`` ones, read the value the main process set.

    Raises:
        ValueError: bad p, intensity, targets, a target the label preset cannot express, or
            ``label_preset=None`` without ``rewrite_labels=False``.

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
                 label_preset: str | LabelPreset | None = "fer2013", rewrite_labels: bool = True,
                 same_on_batch: bool = False, cache: int = 1024,
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
        if label_preset is None and rewrite_labels:
            raise ValueError("AffectAugment: label_preset=None gives no new label; pass rewrite_labels=False to keep "
                             "the dataset's labels unchanged on purpose, or a preset built from your dataset's classes "
                             "(LabelPreset.from_class_to_idx(ds.class_to_idx))")
        self.rewrite_labels = bool(rewrite_labels)
        self.same_on_batch = bool(same_on_batch)
        self.preset = get_preset(label_preset) if (label_preset is not None and rewrite_labels) else None
        self.cache = cache
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self.synthesizer_kwargs = dict(synthesizer_kwargs or {})
        self._synthesizer = synthesizer
        _LIVE.add(self)  # a forked child drops its Synthesizer (`_after_fork_in_child`)
        self._templates = self._parse_targets(targets)
        import torch

        self._epoch = torch.zeros((), dtype=torch.int64).share_memory_()  # seen by every worker
        self._lru: LRUCache[Any] = LRUCache(cache)
        self.stats: dict[str, int] = dict.fromkeys(
            ("applied", "passed", "unfitted", "rejected", "failed", "cache_hits", "disk_hits", "fits"), 0)
        self.last_params: AugmentParams | tuple[AugmentParams, ...] | None = None
        self.last_labels: Any = None
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
                f"label_preset={preset!r}, rewrite_labels={self.rewrite_labels}, same_on_batch={self.same_on_batch}, "
                f"cache={self.cache}, cache_dir={self.cache_dir})")

    # ------------------------------------------------------------------ pickling
    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_synthesizer"] = None  # rebuilt lazily in the receiving process
        state["last_labels"] = None  # per-call output, not configuration
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        _LIVE.add(self)

    def _forget_synthesizer(self) -> None:
        """Drop this process's Synthesizer (built again on first use, from ``synthesizer_kwargs``)."""
        self._synthesizer = None
        self.last_labels = None

    # ------------------------------------------------------------------ epoch
    @property
    def epoch(self) -> int:
        """The epoch that enters every item's draw (see `set_epoch`)."""
        return int(self._epoch)

    def set_epoch(self, epoch: int) -> None:
        """Set the epoch that enters every item's draw; call it before each epoch, as with
        ``DistributedSampler``.

        The value lives in shared memory, so DataLoader workers see it, also with
        ``persistent_workers=True`` (whose copies of the dataset are made once): call it before
        ``iter(loader)`` (a ``for`` loop over the loader) of that epoch.
        """
        if isinstance(epoch, bool) or not isinstance(epoch, (int, np.integer)):
            raise TypeError(f"AffectAugment.set_epoch: epoch must be an int, got {type(epoch).__name__}")
        self._epoch.fill_(int(epoch))

    # ------------------------------------------------------------------ sampling
    def _split(self, sample: Any, *, need_label: bool = True) -> _Parts:
        """The sample's image, label (or `_NO_LABEL`), keypoint entries, and how to put it back together."""
        if isinstance(sample, dict):
            if "image" not in sample:
                raise KeyError("AffectAugment: dict samples need an 'image' key")
            keys = [k for k, v in sample.items() if k in _KEYPOINT_KEYS or tv_kind(v) == "keypoints"]

            def rebuild_dict(img: Any, lab: Any, points: dict) -> dict:
                out = dict(sample)
                out["image"] = img
                if "label" in sample:
                    out["label"] = lab
                out.update(points)
                return out

            parts = _Parts(sample["image"], sample.get("label", _NO_LABEL), {k: sample[k] for k in keys}, rebuild_dict)
        elif isinstance(sample, (tuple, list)):
            if len(sample) != 2:
                raise ValueError(f"AffectAugment: sequence samples must be (image, label), got length {len(sample)}")
            kind = type(sample)
            parts = _Parts(sample[0], sample[1], {}, lambda img, lab, points: kind((img, lab)))
        else:
            parts = _Parts(sample, _NO_LABEL, {}, lambda img, lab, points: img)
        if parts.label is _NO_LABEL and self.rewrite_labels and need_label:
            raise MissingLabelError(
                "AffectAugment: called with an image and no label, so the label it rewrites cannot be returned "
                "(torchvision's ImageFolder(transform=...) passes the transform the image alone: the labels would "
                "silently stay the folder's). Use AffectAugmentedImageFolder(root, aug) or "
                "AffectAugmentedDataset(dataset, aug), call aug((image, label)) or aug(image=..., label=...), "
                "or pass rewrite_labels=False to keep the labels unchanged on purpose")
        parts.batched = _is_batch(parts.image)
        return parts

    def _draw(self, digest: str, index: int | None = None) -> AugmentParams:
        from affectsynth.blendshapes.targets import VA, Expression

        epoch = self.epoch
        key = f"{self.seed}|{digest}|{epoch}" + ("" if index is None else f"|{index}")
        entropy = int.from_bytes(hashlib.blake2b(key.encode(), digest_size=16).digest(), "little")
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
        return AugmentParams(bool(u_apply < self.p), target, synth_seed, digest, epoch)

    def _draw_batch(self, arrays: Sequence[np.ndarray]) -> tuple[AugmentParams, ...]:
        digests = [image_digest(a) for a in arrays]
        if self.same_on_batch:
            one = self._draw(hashlib.blake2b("|".join(digests).encode(), digest_size=16).hexdigest())
            return tuple(dataclasses.replace(one, digest=d) for d in digests)
        return tuple(self._draw(d, i) for i, d in enumerate(digests))

    def sample_params(self, sample: Any) -> AugmentParams | tuple[AugmentParams, ...]:
        """Draw the parameters for one sample (any form `__call__` takes).

        Depends only on ``seed``, the image content and the epoch; for a batch ``[B, C, H, W]`` also
        on the item's index (one draw for all items with ``same_on_batch=True``). A bare image is
        accepted here (nothing is changed, so no label is lost).

        Returns:
            `AugmentParams`, or a tuple of B of them for a batch.
        """
        parts = self._split(sample, need_label=False)
        if parts.batched:
            return self._draw_batch([to_numpy_image(im) for im in parts.image])
        return self._draw(image_digest(to_numpy_image(parts.image)))

    def __call__(self, *inputs: Any, **named: Any) -> Any:
        """Draw parameters for a sample and apply them; returns the same structure.

        Forms: ``aug(sample)`` with an image, ``(image, label)`` / ``[image, label]`` or a dict with
        "image" and "label" (and optionally "keypoints", or any ``tv_tensors.KeyPoints``);
        ``aug(image, label)`` (what torchvision's ``v2.Compose`` passes): returns a tuple;
        ``aug(image=..., label=..., keypoints=...)`` (albumentations' ``A.Compose``): returns a dict.
        The image may be a batch ``[B, C, H, W]`` tensor (labels [B], keypoints [B, N, 2]).

        Raises:
            MissingLabelError: no label, while labels are rewritten (see ``rewrite_labels``).
            TypeError: positional and keyword inputs mixed, or more than two positional ones.
        """
        sample = _one_sample(inputs, named)
        parts = self._split(sample)
        if parts.batched:
            arrays = [to_numpy_image(im) for im in parts.image]
            return self._apply_parts(sample, parts, self._draw_batch(arrays), arrays)
        arr = to_numpy_image(parts.image)
        return self._apply_parts(sample, parts, self._draw(image_digest(arr)), [arr])

    def face_landmarks(self, image: Any) -> np.ndarray | None:
        """[468, 2] float64 MediaPipe-layout landmarks of the image's largest face as the fitted model
        places them, pixels (0.01 px), or None without a face. Given as keypoints, they come back
        equal to the output face's landmarks (`affectsynth.result.SynthLabels.landmarks`).
        """
        arr = to_numpy_image(image)
        fit = self.fit_for(arr)
        return None if fit is None else self._source_landmarks(fit)

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
        fits = list(self._get_synthesizer().fit(image, max_faces=1))
        self.stats["fits"] += 1
        fit = fits[0] if fits else None
        self._remember(digest, fit)
        if path is not None:
            atomic_write_text(path, json.dumps({"version": _CACHE_VERSION, "digest": digest,
                                                "faces": [fit.to_dict()] if fit is not None else []}),
                              fsync=False)
        return fit

    def apply(self, sample: Any, params: AugmentParams | Sequence[AugmentParams]) -> Any:
        """Apply drawn parameters to a sample; returns the same structure (image type/layout kept).

        Items with ``params.apply`` False, without a face, refused by the face gates, or whose
        synthesis raises keep their image, label and keypoints (a single sample comes back as the
        same object) and are counted in :attr:`stats`.

        Args:
            sample: as `__call__` takes it (one object: an image, a pair or a dict).
            params: from `sample_params` or :attr:`last_params`: one `AugmentParams`, or one per
                item of a batch.
        """
        parts = self._split(sample)
        images = list(parts.image) if parts.batched else [parts.image]
        if isinstance(params, AugmentParams):
            params = (params,)
        params = tuple(params)
        if len(params) != len(images) or (params and not parts.batched and len(params) != 1):
            raise ValueError(f"AffectAugment.apply: {len(images)} image(s) but {len(params)} parameter sets")
        return self._apply_parts(sample, parts, params if parts.batched else params[0], None)

    def _apply_parts(self, sample: Any, parts: _Parts, params: Any, arrays: list[np.ndarray] | None) -> Any:
        self.last_params = params
        self.last_labels = None
        if not parts.batched:
            out = self._apply_one(parts.image, parts.label, parts.points, params, None if arrays is None else arrays[0])
            if out is None:
                return sample
            return parts.rebuild(*out)
        results = []
        for b, item in enumerate(parts.image):
            label = _NO_LABEL if parts.label is _NO_LABEL else parts.label[b]
            points = {k: v[b] for k, v in parts.points.items()}
            out = self._apply_one(item, label, points, params[b], None if arrays is None else arrays[b])
            results.append((item, label, points) if out is None else out)
        torch = sys.modules["torch"]
        image = wrap_like(torch.stack([r[0] for r in results]), parts.image)
        label = parts.label if parts.label is _NO_LABEL else _stack_like(parts.label, [r[1] for r in results])
        points = {k: _stack_like(v, [r[2][k] for r in results]) for k, v in parts.points.items()}
        return parts.rebuild(image, label, points)

    def _apply_one(self, image: Any, label: Any, points: dict, params: AugmentParams,
                   arr: np.ndarray | None) -> tuple[Any, Any, dict] | None:
        """(new image, new label, moved keypoints) of one item, or None where it passes through."""
        if not params.apply:
            self.stats["passed"] += 1
            return None
        if arr is None:  # `apply` with parameters drawn elsewhere: the fit is this image's, not the draw's
            arr = to_numpy_image(image)
            digest = image_digest(arr)
        else:
            digest = params.digest
        try:
            fit = self.fit_for(arr, digest)
        except Exception as e:  # a bad item must not stop training (STYLE 5)
            self.stats["failed"] += 1
            self.last_error = f"fit: {type(e).__name__}: {' '.join(str(e).split())}"
            reset_detector(self._synthesizer)  # nor poison the detector for the items after it
            return None
        if fit is None:
            self.stats["unfitted"] += 1
            return None
        rejection = self._get_synthesizer().check(fit)
        if rejection is not None:  # the engine's face gates: the same faces `generate` skips
            self.stats["rejected"] += 1
            self.last_error = f"check: {rejection}"
            return None
        try:
            res = self._get_synthesizer().synthesize(arr, params.target, fit=fit, rng_seed=params.seed)
        except Exception as e:  # a bad item must not stop training (STYLE 5)
            self.stats["failed"] += 1
            self.last_error = f"synthesize: {type(e).__name__}: {' '.join(str(e).split())}"
            return None
        self.stats["applied"] += 1
        self.last_labels = res.labels
        new_image = wrap_like(restore_like(image, np.asarray(res.image)), image) if is_tv_tensor(image) else \
            restore_like(image, np.asarray(res.image))
        new_label = label if label is _NO_LABEL else self.rewrite_label(label, params.target, res.labels)
        moved = {}
        if points:
            src = self._source_landmarks(fit)
            margin = self._get_synthesizer().settings.margin_px
            moved = {k: _move_container(v, src, res.labels.landmarks, margin) for k, v in points.items()}
        return new_image, new_label, moved

    def _source_landmarks(self, fit: Any) -> np.ndarray:
        from affectsynth.compose import output_landmarks

        synth = self._get_synthesizer()
        return output_landmarks(synth.renderer, synth.model.reconstruct(fit), fit)

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


#: Every `AffectAugment` alive in this process (weakly held), for `_after_fork_in_child`.
_LIVE: "weakref.WeakSet[AffectAugment]" = weakref.WeakSet()


def _after_fork_in_child() -> None:
    """In a forked child: drop every live transform's Synthesizer and use one torch thread.

    The child's copy of a Synthesizer built in the parent holds state made for the parent's
    threads (the detector's and renderer's buffers, torch's intra-op pool); a forked DataLoader
    worker then builds its own on first use, as a spawned one does. A Synthesizer passed to the
    constructor is dropped too (as when the transform is pickled to a spawned worker): the child
    builds one from ``synthesizer_kwargs``.
    """
    live = list(_LIVE)
    for aug in live:
        aug._forget_synthesizer()
    torch = sys.modules.get("torch")
    if live and torch is not None:
        torch.set_num_threads(1)


if hasattr(os, "register_at_fork"):  # POSIX; nothing forks elsewhere
    os.register_at_fork(after_in_child=_after_fork_in_child)
