"""Shape and dtype validation for the public entry points of `affectsynth.render`."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import Tensor

__all__ = ["ShapeError", "check_shape", "check_tensor", "check_same_device"]


class ShapeError(ValueError):
    """A tensor has the wrong number of dimensions or a wrong dimension size."""


def _fmt(t: Tensor) -> str:
    dtype = str(t.dtype).replace("torch.", "")
    return f"[{', '.join(str(s) for s in t.shape)}] {dtype}"


def check_tensor(
    t: object,
    *,
    name: str,
    where: str,
    dtypes: Iterable[torch.dtype] | None = None,
) -> Tensor:
    """Raise `TypeError` unless `t` is a tensor with one of `dtypes`.

    Args:
        t: the object to check.
        name: argument name used in the message.
        where: function name used in the message.
        dtypes: allowed dtypes, or None for any.

    Returns:
        `t`, unchanged.

    Raises:
        TypeError: not a tensor, or a dtype outside `dtypes`.
    """
    if not isinstance(t, Tensor):
        raise TypeError(f"{where}: {name} must be a torch.Tensor, got {type(t).__name__}")
    if dtypes is not None:
        dtypes = tuple(dtypes)
        if t.dtype not in dtypes:
            want = " or ".join(str(d).replace("torch.", "") for d in dtypes)
            raise TypeError(f"{where}: {name} must be {want}, got {_fmt(t)}")
    return t


def check_shape(
    t: Tensor,
    spec: str | Iterable[str],
    *,
    name: str,
    where: str = "render",
    dims: dict[str, int] | None = None,
) -> dict[str, int]:
    """Check a tensor's shape against a kornia-style spec such as ``"B V 4"``.

    Tokens are integers (exact size) or names (any size, but the same name must have the same
    size everywhere it appears, including names already bound in `dims`). Several specs may be
    given; the first that matches wins.

    Args:
        t: tensor to check.
        spec: one spec string, or several alternatives.
        name: argument name used in the message.
        where: function name used in the message.
        dims: names already bound by earlier checks; updated in place with new bindings.

    Returns:
        The dict of bound names (the same object as `dims` when given).

    Raises:
        TypeError: `t` is not a tensor.
        ShapeError: no spec matches.

    Example:
        >>> import torch
        >>> check_shape(torch.zeros(2, 5, 4), "B V 4", name="pos")
        {'B': 2, 'V': 5}
    """
    check_tensor(t, name=name, where=where)
    specs = [spec] if isinstance(spec, str) else list(spec)
    bound = {} if dims is None else dims
    for s in specs:
        tokens = s.split()
        if len(tokens) != t.dim():
            continue
        trial = dict(bound)
        ok = True
        for tok, size in zip(tokens, t.shape):
            if tok.lstrip("-").isdigit():
                if int(tok) != size:
                    ok = False
                    break
            elif tok in trial and trial[tok] != size:
                ok = False
                break
            else:
                trial[tok] = int(size)
        if ok:
            bound.update(trial)
            return bound
    want = " or ".join(f"[{', '.join(s.split())}]" for s in specs)
    known = ", ".join(f"{k}={v}" for k, v in bound.items())
    extra = f" (with {known})" if known else ""
    raise ShapeError(f"{where}: {name} must be {want}{extra}, got {_fmt(t)}")


def check_same_device(*tensors: Tensor | None, where: str) -> None:
    """Raise `ValueError` unless all given tensors live on one device."""
    devs = {t.device for t in tensors if t is not None}
    if len(devs) > 1:
        raise ValueError(f"{where}: inputs must share a device, got {sorted(str(d) for d in devs)}")
