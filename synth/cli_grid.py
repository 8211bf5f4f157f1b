"""``affectsynth grid`` and ``affectsynth demo``: labelled grids of synthesised expressions."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from affectsynth.cli_targets import aus_option, expression_names_option, expression_targets_option, intensities_option
from affectsynth.labels import va_wheel_points

if TYPE_CHECKING:
    from affectsynth.progress import StageProgress

__all__ = ["demo_command", "grid_command", "grid_targets"]


def grid_targets(expressions: str | None, intensity: str | None, va_wheel: int | None,
                 aus: tuple[str, ...] = ()) -> list:
    """Columns of a grid from the options: expressions (default all 8, none with only ``--aus``)
    or a VA wheel, then one column per ``--aus`` target."""
    if expressions is not None and va_wheel is not None:
        raise click.UsageError("--expressions and --va-wheel are alternatives; give one of them")
    au_targets = aus_option(aus)
    if au_targets and expressions is None and va_wheel is None:
        if intensity is not None:
            raise click.UsageError("--intensity applies to --expressions only; add --expressions or drop --intensity")
        return au_targets
    if va_wheel is not None:
        if intensity is not None:
            raise click.UsageError("--intensity applies to --expressions only; drop it with --va-wheel")
        from affectsynth.blendshapes.targets import VA

        try:
            wheel = [VA(v, a) for v, a in va_wheel_points(va_wheel)]
        except ValueError as e:
            raise click.BadParameter(str(e), param_hint="--va-wheel") from None
        return wheel + au_targets
    return expression_targets_option(expression_names_option(expressions), intensities_option(intensity)) + au_targets


def _write_grid(images: list[tuple[str, "object"]], targets: list, out: Path, *, cell: int, crop: bool,
                device: str, expressions_lib: Path | None, seed: int, progress: "StageProgress | None" = None
                ) -> list[str]:
    """Synthesise and save the grid; returns the row labels of photos that got no synthesised cells.

    ``progress``: a bar of 1 + len(images) x (1 + len(targets)) + 1 steps (models, fits and cells, write).
    """
    from affectsynth.grid import make_grid, synthesize_grid_rows
    from affectsynth.images import save_png
    from affectsynth.synthesizer import Synthesizer

    if progress is not None:
        progress.stage("loading models")
    synth = Synthesizer(device=device, expressions=str(expressions_lib) if expressions_lib else None)
    if progress is not None:
        progress.step("fitting")
    n, cells = len(targets), [0]

    def on_step(done: str) -> None:  # one step done; show the stage that comes next
        if progress is None:
            return
        cells[0] = cells[0] + 1 if done.startswith("synthesised") else 0
        progress.step(f"synthesising {cells[0] + 1}/{n}" if cells[0] < n else "writing the grid")

    rows, row_labels, col_labels = synthesize_grid_rows(synth, images, targets, crop=crop, cell=cell, seed=seed,
                                                        on_step=on_step)
    save_png(out, make_grid(rows, row_labels, col_labels, cell=cell))
    if progress is not None:
        progress.step("done")
    return [label for row, label in zip(rows, row_labels) if len(row) == 1]


GRID_EPILOG = """\b
Examples:
  affectsynth grid photo.jpg --out grid.png                     # all 8 categories
  affectsynth grid a.jpg b.png --out grid.png --expressions happiness,anger --intensity 0.5,1
  affectsynth grid photo.jpg --out wheel.png --va-wheel 8       # 8 points around the VA circle
  affectsynth grid photo.jpg --out aus.png --aus AU12=0.8,AU6=0.5 --aus AU4=1   # one column per --aus
"""


@click.command("grid", epilog=GRID_EPILOG)
@click.argument("images", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path), help="Output PNG.")
@click.option("--expressions", metavar="LIST", help="Comma-separated categories (default: all 8).")
@click.option("--intensity", metavar="LIST", help="Comma-separated intensities in [0, 1] (default 1.0).")
@click.option("--va-wheel", type=int, metavar="N", help="Columns = N points evenly spaced on the VA circle.")
@click.option("--aus", "aus", multiple=True, metavar="AU=X,...",
              help="A column of Action Units, e.g. --aus AU12=0.8,AU6=0.5; repeatable.")
@click.option("--cell", type=int, default=256, show_default=True, help="Cell side in pixels.")
@click.option("--full", is_flag=True, help="Show whole photos instead of crops around the face.")
@click.option("--expressions-lib", type=click.Path(exists=True, dir_okay=False, path_type=Path), metavar="LIB.npz",
              help="Expression library built by `affectsynth build-expressions`.")
@click.option("--device", default="cpu", show_default=True, help="torch device.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the synthesis draws (variants, ...).")
def grid_command(images: tuple[Path, ...], out: Path, expressions: str | None, intensity: str | None,
                 va_wheel: int | None, aus: tuple[str, ...], cell: int, full: bool, expressions_lib: Path | None,
                 device: str, seed: int) -> None:
    """Write a labelled grid: one row per IMAGE (largest face), one column per target.

    The first column is the input. Prints the grid's path on stdout. A photo without a usable face
    gets a row with only its input, labelled with the reason ("no face", "extreme-pose", ...), a
    message on stderr, and exit code 3.
    """
    from affectsynth.images import load_image

    targets = grid_targets(expressions, intensity, va_wheel, aus)
    if cell < 16:
        raise click.BadParameter(f"expected >= 16, got {cell}", param_hint="--cell")
    loaded = [(p.stem, load_image(p)) for p in images]
    empty = _write_grid(loaded, targets, out, cell=cell, crop=not full, device=device,
                        expressions_lib=expressions_lib, seed=seed)
    click.echo(str(out))
    for label in empty:
        click.echo(f"affectsynth grid: {label}: nothing synthesised", err=True)
    if empty:
        raise SystemExit(3)


@click.command("demo", epilog="""\b
Example:
  affectsynth demo --out demo/      # writes demo/astronaut.png and demo/grid.png
""")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Output folder (created).")
@click.option("--cell", type=int, default=256, show_default=True, help="Cell side in pixels.")
@click.option("--device", default="cpu", show_default=True, help="torch device.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the synthesis draws (variants, ...).")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
def demo_command(out_dir: Path, cell: int, device: str, seed: int, quiet: bool = False) -> None:
    """Synthesise all 8 expression categories on the shipped public-domain `astronaut` photo (NASA).

    Writes OUT/astronaut.png (the input) and OUT/grid.png (input + 8 categories) and prints
    both paths on stdout. A bar on stderr shows the stages (loading models, fitting,
    synthesising k/8) when stderr is a terminal or AFFECTSYNTH_PROGRESS=1; --quiet hides it.
    """
    from affectsynth.images import save_png
    from affectsynth.progress import StageProgress, progress_enabled
    from affectsynth.sample_data import astronaut

    photo = astronaut()
    out_dir.mkdir(parents=True, exist_ok=True)
    src = out_dir / "astronaut.png"
    save_png(src, photo)
    grid = out_dir / "grid.png"
    targets = grid_targets(None, None, None)
    bar = StageProgress(len(targets) + 3, desc="demo", enabled=progress_enabled(quiet=quiet))
    try:
        _write_grid([("astronaut", photo)], targets, grid, cell=cell, crop=True,
                    device=device, expressions_lib=None, seed=seed, progress=bar)
    finally:
        bar.close()
    click.echo(str(src))
    click.echo(str(grid))
