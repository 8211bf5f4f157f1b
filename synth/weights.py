"""The target-weight policy: which of the photo's own blendshape weights an output keeps.

The target's blendshape weights replace the fitted ones (a smiling photo can be made sad),
except:

* the eyelid shapes (eyeBlink/eyeSquint/eyeWide, in `ADDITIVE_SHAPES`), which are added on top
  of the person's own eyelid state: landmarks measure eye aperture relative to the model's
  neutral, and keeping it preserves the person's eyes. A target that widens the eyes releases
  the person's own squint and blink (and one that narrows them releases their widening), side
  by side, so surprise on a smiling photo still opens the eyes;
* the sideways mouth shift (mouthLeft/mouthRight, also in `ADDITIVE_SHAPES`), which contempt's
  unilateral dimpler drives: added to the photo's own shift, so a person's off-centre mouth
  stays off-centre in every output (fits of the dev photos hold up to 0.29 of it, on both
  sides at once) and contempt moves it by the same amount from wherever it was; the shapes are
  linear, so no release is needed;
* shapes that no category of the expression model drives (jaw sideways/forward, lip
  pucker/funnel, gaze, ...): they describe the person's own face and pose, and replacing them
  with 0 would move every output away from the photo for no label's sake. mouthClose is always
  replaced: it only makes sense together with jawOpen.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Sequence

import numpy as np
import torch
from torch import Tensor

__all__ = ["ADDITIVE_SHAPES", "kept_shapes", "output_weights"]

#: Shapes always applied on top of the fitted weights: the eyelids and the sideways mouth shift.
ADDITIVE_SHAPES = ("eyeBlink_L", "eyeBlink_R", "eyeSquint_L", "eyeSquint_R", "eyeWide_L", "eyeWide_R",
                   "mouthLeft", "mouthRight")


def kept_shapes(names: Sequence[str], driven_names: Sequence[str], driven_max: np.ndarray) -> list[bool]:
    """Per blendshape of ``names``: True where the fitted weight is kept (the target adds to it).

    Args:
        names: the face model's blendshape names.
        driven_names: the expression model's shape names.
        driven_max: [S] float, each expression-model shape's largest prototype weight (0 = no
            category drives it).
    """
    driven = {n for n, w in zip(driven_names, np.asarray(driven_max)) if w > 0}
    driven |= {n[:-2] + other for n in driven if n[-2:] in ("_L", "_R") for other in ("_L", "_R")}  # both sides
    return [n in ADDITIVE_SHAPES or (n not in driven and n != "mouthClose") for n in names]


def output_weights(target: Tensor, fitted: Tensor, kept: Tensor, names: Sequence[str]) -> Tensor:
    """[S] final blendshape weights of an output face (see the module docstring).

    Args:
        target: [S] float32 the target's weights in ``names`` order.
        fitted: [S] float32 the photo's fitted weights.
        kept: [S] bool, `kept_shapes` of ``names``.
        names: the blendshape names (must hold eyeWide/eyeSquint/eyeBlink _L/_R).

    Returns:
        [S] float32 in [0, 1]: kept shapes ``clamp(fitted' + target)``, the others ``target``,
        where ``fitted'`` has the eyelid releases applied.
    """
    if _numpy_applies(target, fitted, kept):
        return _output_weights_numpy(target, fitted, kept, names)
    fitted = fitted.to(target.device).clone()
    for wide, squint, blink in _eyelids(tuple(names)):
        fitted[squint] *= 1 - target[wide]
        fitted[blink] *= 1 - target[wide]
        fitted[wide] *= 1 - torch.maximum(target[squint], target[blink])
    return torch.where(kept, (fitted + target).clamp(0, 1), target)


@lru_cache(maxsize=8)
def _eyelids(names: tuple[str, ...]) -> tuple[tuple[int, int, int], ...]:
    """Per side (_L, _R): the indices of eyeWide, eyeSquint and eyeBlink in ``names``."""
    return tuple(tuple(names.index(n + side) for n in ("eyeWide", "eyeSquint", "eyeBlink")) for side in ("_L", "_R"))


def _numpy_applies(target: Tensor, fitted: Tensor, kept: Tensor) -> bool:
    """Whether `output_weights` can run on numpy views: float32 CPU tensors that need no gradient
    (the synthesizer's case; about 40 us of tiny torch ops per output become a few us)."""
    return (target.dtype == fitted.dtype == torch.float32 and kept.dtype == torch.bool
            and all(t.device.type == "cpu" and not t.requires_grad for t in (target, fitted, kept)))


def _output_weights_numpy(target: Tensor, fitted: Tensor, kept: Tensor, names: Sequence[str]) -> Tensor:
    """`output_weights` in float32 numpy: the same IEEE operations in the same order, the same floats."""
    t = target.numpy()
    f = fitted.numpy().copy()
    one = np.float32(1)
    for wide, squint, blink in _eyelids(tuple(names)):
        f[squint] *= one - t[wide]
        f[blink] *= one - t[wide]
        f[wide] *= one - np.maximum(t[squint], t[blink])
    return torch.from_numpy(np.where(kept.numpy(), np.clip(f + t, np.float32(0), np.float32(1)), t))
