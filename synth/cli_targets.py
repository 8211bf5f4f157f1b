"""Command-line target options shared by ``generate``, ``grid`` and ``animate``: one parser per option.

Each function turns one option's text into values and raises ``click.BadParameter`` naming the
option on bad input.
"""

from __future__ import annotations

import click

from affectsynth.labels import CATEGORIES, expression_targets, parse_float_list

__all__ = ["aus_option", "expression_names_option", "expression_targets_option", "intensities_option",
           "va_path_option"]


def expression_names_option(text: str | None, *, default: tuple[str, ...] = CATEGORIES) -> list[str]:
    """Category names of ``--expressions`` ("all" = every category; None = ``default``).

    Raises:
        click.BadParameter: an empty name in the list.
    """
    if text is None:
        return list(default)
    names: list[str] = []
    for n in text.split(","):
        n = n.strip()
        if not n:
            raise click.BadParameter(f"empty name in {text!r}; write e.g. happiness,sadness", param_hint="--expressions")
        names.extend(CATEGORIES if n.lower() == "all" else [n])
    return names


def intensities_option(values: str | tuple[str, ...] | None) -> list[float]:
    """Intensities of ``--intensity`` (comma lists, repeatable; default [1.0]), each in [0, 1].

    Raises:
        click.BadParameter: not a number, or outside [0, 1].
    """
    if not values:
        return [1.0]
    try:
        ints = parse_float_list(values, what="--intensity")
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--intensity") from None
    for i in ints:
        if not 0.0 <= i <= 1.0:
            raise click.BadParameter(f"intensity must be in [0, 1], got {i}", param_hint="--intensity")
    return ints


def expression_targets_option(names: list[str], intensities: list[float]) -> list:
    """Every name at every intensity (see `affectsynth.labels.expression_targets`).

    Raises:
        click.BadParameter: an unknown category.
    """
    try:
        return expression_targets(names, intensities)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--expressions") from None


def aus_option(values: str | tuple[str, ...] | None, *, param_hint: str = "--aus") -> list:
    """AU targets of ``--aus`` (repeatable; each value one `AUs` target): ``"AU12=0.8,AU6=0.5"``.

    Keys are case-insensitive (``au12`` = ``AU12``; ``AU12_R`` = the subject's right only);
    intensities in [0, 1]. Duplicate targets are dropped, keeping the first.

    Example:
        >>> aus_option(("AU12=0.8,au6=0.5",))
        [AUs(units=mappingproxy({'AU12': 0.8, 'AU6': 0.5}))]

    Raises:
        click.BadParameter: an empty item, no ``=``, an unknown AU, a repeated AU in one value,
            or an intensity that is not a number in [0, 1].
    """
    from affectsynth.blendshapes.facs import SUPPORTED_AUS
    from affectsynth.blendshapes.targets import AUs

    if not values:
        return []
    out: list = []
    for text in ([values] if isinstance(values, str) else list(values)):
        units: dict[str, float] = {}
        for item in text.split(","):
            item = item.strip()
            if "=" not in item:
                raise click.BadParameter(f"expected AU=INTENSITY items like AU12=0.8,AU6=0.5, got {item!r} in {text!r}",
                                         param_hint=param_hint)
            key, _, raw = item.partition("=")
            key = key.strip().upper()
            if key not in SUPPORTED_AUS:
                raise click.BadParameter(f"unknown AU {key!r} in {text!r}; expected one of {', '.join(SUPPORTED_AUS)}",
                                         param_hint=param_hint)
            if key in units:
                raise click.BadParameter(f"{key} appears twice in {text!r}; give each AU once", param_hint=param_hint)
            try:
                v = float(raw)
            except ValueError:
                raise click.BadParameter(f"{key}: {raw.strip()!r} is not a number (in {text!r})",
                                         param_hint=param_hint) from None
            if not 0.0 <= v <= 1.0:
                raise click.BadParameter(f"{key}: intensity must be in [0, 1], got {v} (in {text!r})",
                                         param_hint=param_hint)
            units[key] = v
        t = AUs(units)
        if t not in out:
            out.append(t)
    return out


def va_path_option(text: str, *, param_hint: str = "--path"):
    """The `AffectPath` of ``--path``: ``"V,A;V,A;..."`` key points, or ``circle``.

    ``circle`` is once round the VA circle (8 keys, closed: `affectsynth.animate.circle_path`).
    A path whose last point repeats the first is a loop.

    Example:
        >>> [(p.valence, p.arousal) for p in va_path_option("0,0;0.8,0.3").points]
        [(0.0, 0.0), (0.8, 0.3)]

    Raises:
        click.BadParameter: an empty point, not two numbers, or a coordinate outside [-1, 1].
    """
    from affectsynth.blendshapes.targets import VA, AffectPath
    from affectsynth.labels import parse_va

    if text.strip().lower() == "circle":
        from affectsynth.animate import circle_path

        return circle_path()
    points = []
    for chunk in text.split(";"):
        if not chunk.strip():
            raise click.BadParameter(f"empty point in {text!r}; write V,A;V,A;... e.g. \"0,0;0.8,0.3;-0.6,0.5\"",
                                     param_hint=param_hint)
        try:
            v, a = parse_va(chunk)
        except ValueError as e:
            raise click.BadParameter(f"{str(e).replace('--va', 'point')} (in {text!r})", param_hint=param_hint) from None
        points.append(VA(v, a))
    return AffectPath(tuple(points))
