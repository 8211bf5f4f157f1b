"""albumentations: `AffectAugment` as a step of ``A.Compose`` (image, label and keypoints updated together).

``aug(image=..., label=..., keypoints=...)`` already returns a dict, as albumentations
transforms do; ``A.Compose`` (albumentations 2) additionally wants its own transform class
(``available_keys``, serialisation, processors). `to_albumentations` wraps the transform in one:
keypoints (in the Compose's internal [N, 2+] pixel layout) move with the face, the "label" entry
is rewritten, masks and boxes pass through. albumentations is not a dependency of affectsynth.
"""

from __future__ import annotations

from typing import Any

from affectsynth.transform import AffectAugment

__all__ = ["INSTALL_HINT", "to_albumentations"]

#: The install command for albumentations.
INSTALL_HINT = "pip install 'affectsynth[integrations]' (or: pip install albumentations)"


def to_albumentations(aug: AffectAugment) -> Any:
    """``aug`` as an albumentations transform, for ``A.Compose([...])``.

    Args:
        aug: the transform (its own ``p`` and seeded draws decide; the wrapper always runs it).

    Returns:
        An ``albumentations.BasicTransform``; call the Compose with ``label=`` (and optionally
        ``keypoints=``) as well as ``image=``.

    Raises:
        ImportError: albumentations is not installed (the message gives the install command).
        TypeError: ``aug`` is not an `AffectAugment`.
    """
    if not isinstance(aug, AffectAugment):
        raise TypeError(f"to_albumentations: expected an AffectAugment, got {type(aug).__name__}")
    try:
        import albumentations as A
    except ImportError as e:
        raise ImportError(f"to_albumentations needs albumentations: {INSTALL_HINT}") from e

    class AlbumentationsAffectAugment(A.BasicTransform):
        """`AffectAugment` inside ``A.Compose``."""

        def __init__(self, augment: AffectAugment) -> None:
            self.augment = augment
            super().__init__(p=1.0)

        @property
        def targets(self) -> dict:
            return {"image": self.apply, "keypoints": self.apply, "label": self.apply}

        def apply(self, x: Any, **params: Any) -> Any:  # not used: __call__ updates the targets together
            return x

        def get_transform_init_args_names(self) -> tuple[str, ...]:
            return ()

        def __call__(self, *args: Any, force_apply: bool = False, **data: Any) -> Any:
            if args:
                raise KeyError("AffectAugment in A.Compose: pass data as named arguments, e.g. pipe(image=..., label=...)")
            return self.augment(**data)

        def __repr__(self) -> str:
            return f"AlbumentationsAffectAugment({self.augment!r})"

    return AlbumentationsAffectAugment(aug)
