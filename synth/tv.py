"""torchvision v2 conventions for `AffectAugment`: ``tv_tensors`` keep their type through the transform.

``v2.Compose`` calls a transform with the sample's parts (``aug(image, label)``) or with a dict;
``tv_tensors.Image`` must come back a ``tv_tensors.Image``, ``tv_tensors.KeyPoints`` move with the
face, and ``BoundingBoxes`` pass through (an expression moves the skin by a few pixels inside the
face box; the box still bounds the face). torchvision is not a dependency: these helpers recognise
``tv_tensors`` by their class and use ``torchvision.tv_tensors.wrap`` only on objects that came from it.
"""

from __future__ import annotations

import sys
from typing import Any

__all__ = ["INSTALL_HINT", "is_tv_tensor", "tv_kind", "wrap_like"]

#: How to get a CPU torchvision without pulling a CUDA torch (pick the version matching your torch).
INSTALL_HINT = ("pip install torchvision --index-url https://download.pytorch.org/whl/cpu "
                "(the CPU build; a plain `pip install torchvision` pulls a CUDA torch of several GB)")


def is_tv_tensor(x: Any) -> bool:
    """Whether ``x`` is a ``torchvision.tv_tensors.TVTensor`` (without importing torchvision)."""
    mod = sys.modules.get("torchvision.tv_tensors")
    return mod is not None and isinstance(x, mod.TVTensor)


def tv_kind(x: Any) -> str | None:
    """"image", "keypoints", "boxes", "mask", "video", or None for anything that is no tv_tensor."""
    if not is_tv_tensor(x):
        return None
    mod = sys.modules["torchvision.tv_tensors"]
    for name, kind in (("Image", "image"), ("KeyPoints", "keypoints"), ("BoundingBoxes", "boxes"),
                       ("Mask", "mask"), ("Video", "video")):
        cls = getattr(mod, name, None)
        if cls is not None and isinstance(x, cls):
            return kind
    return "other"


def wrap_like(new: Any, like: Any) -> Any:
    """``new`` (a plain tensor) as the tv_tensor type of ``like`` (with its metadata), or ``new`` as is.

    Args:
        new: a torch tensor of the new values.
        like: the original value, a tv_tensor or anything else.
    """
    if not is_tv_tensor(like):
        return new
    return sys.modules["torchvision.tv_tensors"].wrap(new.as_subclass(sys.modules["torch"].Tensor), like=like)
