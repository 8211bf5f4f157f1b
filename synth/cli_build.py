"""``affectsynth build-expressions``: build an expression library from 4D mesh sequences."""

from __future__ import annotations

from pathlib import Path

import click

__all__ = ["build_expressions_command"]


@click.command("build-expressions", epilog="""\b
Examples:
  affectsynth build-expressions sequences/ --out mylib.npz
  affectsynth build-expressions sequences/ --out mylib.npz --va-bins 12 --no-fill-missing
  affectsynth generate faces/ out/ --expressions-lib mylib.npz    # use the library
""")
@click.argument("seq_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path), metavar="LIB.npz",
              help="Library file to write (atomically).")
@click.option("--neutral-frames", type=int, default=None, help="Pick the neutral among the first N frames.")
@click.option("--apex-frames", type=int, default=None, help="Average the N largest-displacement frames as apex.")
@click.option("--va-bins", type=int, default=None, help="Bins per valence/arousal axis of the VA model.")
@click.option("--smoothing", type=float, default=None, help="Gaussian sigma (in bins) of the VA-bin blur.")
@click.option("--no-fill-missing", is_flag=True,
              help="Leave categories without data out (default: take the built-in prototype).")
def build_expressions_command(seq_dir: Path, out: Path, neutral_frames: int | None, apex_frames: int | None,
                              va_bins: int | None, smoothing: float | None, no_fill_missing: bool) -> None:
    """Fit blendshape weights to the 4D sequences in SEQ_DIR and write an expression library.

    SEQ_DIR holds one folder per sequence (mesh frames in the face model's vertex order, and
    labels); see `affectsynth.blendshapes.sequences` for the layout. Prints the library path.
    """
    from affectsynth.blendshapes.build import build_library_from_dir

    from affectsynth.fitting import FaceModel

    opts = {k: v for k, v in {"neutral_frames": neutral_frames, "apex_frames": apex_frames,
                               "va_bins": va_bins, "smoothing": smoothing}.items() if v is not None}
    if no_fill_missing:
        opts["fill_missing"] = False
    face_model = FaceModel.default()
    try:
        # reference: the captures are rigidly aligned to the model's neutral before projection
        model = build_library_from_dir(seq_dir, face_model.expressions, out, reference=face_model.neutral, **opts)
    except (ValueError, TypeError) as e:
        raise click.ClickException(f"build-expressions: {' '.join(str(e).split())}") from None
    names = getattr(model, "names", None)
    click.echo(f"wrote {out}" + (f" ({len(names)} shapes)" if names is not None else ""), err=True)
    click.echo(str(out))
