"""Command-line target options shared by ``generate`` and ``grid``: one parser per option.

Each function turns one option's text into values and raises ``click.BadParameter`` naming the
option on bad input.
"""

from __future__ import annotations

import click

from affectsynth.labels import CATEGORIES, expression_targets, parse_float_list

__all__ = ["expression_names_option", "expression_targets_option", "intensities_option"]


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
