"""``affectsynth animate``: one photo's face along an affect path, as PNG frames or a video, with a frame manifest."""

from __future__ import annotations

import csv
import io
import time
from pathlib import Path

import click

from affectsynth.cli_targets import expression_names_option, va_path_option

__all__ = ["animate_command", "manifest_path", "output_format", "write_frame_manifest"]

_SUFFIX_FORMATS = {".gif": "gif", ".webp": "webp", ".mp4": "mp4"}


def output_format(out: Path, fmt: str | None) -> str:
    """The output format: ``fmt`` when given, else from OUT's suffix (.gif, .webp, .mp4; else png frames).

    Raises:
        click.UsageError: ``fmt`` contradicts OUT's suffix, or a video format names a folder.
    """
    by_suffix = _SUFFIX_FORMATS.get(out.suffix.lower())
    if fmt is None:
        fmt = by_suffix or "png"
    elif fmt == "png" and by_suffix:
        raise click.UsageError(f"--format png writes a folder of frames, but --out {out} names a .{by_suffix} file; "
                               f"drop --format or give a folder")
    elif fmt != "png" and by_suffix and by_suffix != fmt:
        raise click.UsageError(f"--format {fmt} but --out {out} ends in {out.suffix}; make them agree")
    if fmt != "png" and out.is_dir():
        raise click.UsageError(f"--out {out} is a folder; --format {fmt} writes one file, e.g. --out {out / ('animation.' + fmt)}")
    return fmt


def manifest_path(out: Path, fmt: str) -> Path:
    """Where the frame manifest goes: OUT/frames.csv for png frames, else OUT's stem + ``.frames.csv`` beside it."""
    return out / "frames.csv" if fmt == "png" else out.with_name(out.stem + ".frames.csv")


def write_frame_manifest(path: Path, rows: list[dict]) -> None:
    """Write the frame rows (`affectsynth.animate.FRAME_COLUMNS`) as CSV, atomically."""
    from affectsynth.animate import FRAME_COLUMNS
    from affectsynth.atomic import atomic_write_text

    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=FRAME_COLUMNS, lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: "" if r.get(k) is None else r[k] for k in FRAME_COLUMNS})
    atomic_write_text(path, buf.getvalue())


def _pair(text: str, flag: str) -> tuple[float, float]:
    try:
        a, b = (float(x) for x in text.split(","))
    except ValueError:
        raise click.BadParameter(f"expected two numbers like 4,2, got {text!r}", param_hint=flag) from None
    if not (0.0 <= a <= 30.0 and 0.0 <= b <= 30.0):
        raise click.BadParameter(f"amplitudes must be in [0, 30] degrees, got {text!r}", param_hint=flag)
    return a, b


EPILOG = """\b
Examples:
  affectsynth animate --demo --out circle.webp --path circle --frames 48 --size 256
      the shipped photo once round the valence-arousal circle (a looping WebP)
  affectsynth animate photo.jpg --out seq/ --path "0,0;0.8,0.3;-0.6,0.6;0,0" --seconds 4 --fps 12
      PNG frames seq/frame_0000.png ... along a spline through 4 VA points
  affectsynth animate photo.jpg --out seq.gif --expressions neutral,happiness,surprise --frames 60
      each category rises from neutral to its apex and returns, in turn
  affectsynth animate photo.jpg --out seq.mp4 --path circle --sway 4,2     # needs affectsynth[video]
  affectsynth animate --demo --out seq/ --path circle --frames 8 --dry-run  # list the frames only

\b
Every run also writes a frame manifest (OUT/frames.csv for frames, else <stem>.frames.csv beside
the video): frame, time_s, target (VA or category + intensity), final weights, pose, head sway,
landmarks (JSON, pixels of the frame). The fit, texture and random draws are shared by all frames.
"""


@click.command("animate", epilog=EPILOG, context_settings={"max_content_width": 100})
@click.argument("photo", required=False, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--demo", is_flag=True, help="Animate the shipped public-domain photo (NASA astronaut) instead of PHOTO.")
@click.option("--out", required=True, type=click.Path(path_type=Path),
              help="A folder for PNG frames, or a .gif/.webp/.mp4 file.")
@click.option("--path", "path_text", metavar="'V,A;V,A;...'|circle",
              help="Valence-arousal key points (Catmull-Rom through them; a last point equal to the first loops), "
                   "or 'circle'.")
@click.option("--expressions", metavar="LIST", help="Categories in turn, e.g. neutral,happiness,surprise.")
@click.option("--intensity", type=click.FloatRange(0, 1), default=1.0, show_default=True,
              help="Apex intensity of each category (with --expressions).")
@click.option("--frames", type=click.IntRange(1, 10000), metavar="N", help="Number of frames (default 36).")
@click.option("--seconds", type=click.FloatRange(0, 600, min_open=True), metavar="S",
              help="Duration; frames = round(S x FPS). Alternative to --frames.")
@click.option("--fps", type=click.FloatRange(0, 120, min_open=True), default=12.0, show_default=True,
              help="Frames per second (frame times and video rate).")
@click.option("--format", "fmt", type=click.Choice(["png", "gif", "webp", "mp4"]),
              help="Output format (default from OUT's suffix; png frames for a folder).")
@click.option("--size", type=click.IntRange(16, 4096), metavar="S",
              help="Frames are S x S crops centred on the face (default: the whole photo).")
@click.option("--sway", default="0,0", show_default=True, metavar="YAW,PITCH",
              help="Head sway amplitude in degrees along the sequence (one yaw swing, two nods), recorded per frame.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the sequence's draws (variants).")
@click.option("--quality", type=click.IntRange(1, 100), default=90, show_default=True,
              help="WebP quality (100 = lossless) and MP4 quality.")
@click.option("--expressions-lib", type=click.Path(exists=True, dir_okay=False, path_type=Path), metavar="LIB.npz",
              help="Expression library built by `affectsynth build-expressions`.")
@click.option("--device", default="cpu", show_default=True, help="torch device.")
@click.option("--threads", type=click.IntRange(1, 256), default=1, show_default=True, metavar="N",
              help="torch CPU threads. One frame's work is small: extra threads mostly wait (as in generate's workers).")
@click.option("--dry-run", is_flag=True, help="List the planned frames (index, time, target) and exit; nothing is loaded or written.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
def animate_command(photo: Path | None, demo: bool, out: Path, path_text: str | None, expressions: str | None,
                    intensity: float, frames: int | None, seconds: float | None, fps: float, fmt: str | None,
                    size: int | None, sway: str, seed: int, quality: int, expressions_lib: Path | None,
                    device: str, threads: int, dry_run: bool, quiet: bool) -> None:
    """Render the largest face of PHOTO along an affect path: one frame per step, or a video.

    Give --path (valence-arousal key points) or --expressions (categories in turn). Prints the
    written output and the frame manifest on stdout.
    """
    if (photo is None) == (not demo):
        raise click.UsageError("give PHOTO or --demo (the shipped photo), not both" if photo else "give PHOTO or --demo")
    if (path_text is None) == (expressions is None):
        raise click.UsageError("give one of --path (e.g. --path circle) or --expressions (e.g. neutral,happiness)")
    if frames is not None and seconds is not None:
        raise click.UsageError("--frames and --seconds are alternatives; give one of them")
    n = frames if frames is not None else (max(1, round(seconds * fps)) if seconds is not None else 36)
    sway_deg = _pair(sway, "--sway")
    fmt = output_format(out, fmt)

    from affectsynth.animate import animate, plan_category_frames, plan_path_frames
    from affectsynth.labels import canonical_category
    from affectsynth.video import MP4_INSTALL, frame_name, video_formats, write_frames

    if fmt not in video_formats():
        raise click.UsageError(f"--format {fmt} needs imageio-ffmpeg: {MP4_INSTALL}; or write png, gif or webp")
    path = va_path_option(path_text) if path_text is not None else None  # bad input fails before loading
    cats: list[str] = []
    if expressions is not None:
        try:
            cats = [canonical_category(c) for c in expression_names_option(expressions)]
        except ValueError as e:
            raise click.BadParameter(str(e), param_hint="--expressions") from None

    import torch

    if dry_run:  # VA keys and categories plan without the expression model
        plan = (plan_path_frames(path, n, fps=fps, sway_deg=sway_deg) if path is not None
                else plan_category_frames(cats, n, fps=fps, intensity=intensity, sway_deg=sway_deg))
        from affectsynth.result import TargetLabels

        for f in plan:
            where = out / frame_name(f.index) if fmt == "png" else out
            click.echo(f"{f.index}\t{f.time_s:.4f}\t{TargetLabels.of(f.target).text()}\t"
                       f"sway {f.sway_deg[0]:+.2f},{f.sway_deg[1]:+.2f}\t{where}")
        click.echo(f"dry run: {len(plan)} frames planned ({fmt} -> {out}, manifest {manifest_path(out, fmt)}); "
                   "nothing written", err=True)
        return

    from affectsynth.images import load_image
    from affectsynth.progress import make_progress, progress_enabled
    from affectsynth.synthesizer import Synthesizer

    old_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        if demo:
            from affectsynth.sample_data import astronaut

            image = astronaut()
        else:
            image = load_image(photo)
        synth = Synthesizer(device=device, expressions=str(expressions_lib) if expressions_lib else None)
        if path is not None:
            plan = plan_path_frames(path, n, fps=fps, sway_deg=sway_deg, model=synth.expressions)
        else:
            plan = plan_category_frames(cats, n, fps=fps, intensity=intensity, sway_deg=sway_deg)
        fits = synth.fit(image, max_faces=1)
        if not fits:
            raise click.ClickException(f"no face found in {photo or 'the demo photo'}")
        fit = fits[0]
        if size is not None:
            image, fit = synth.crop_to_face(image, fit, size)
        start = time.perf_counter()
        images, rows = [], []
        with make_progress(len(plan), desc="animate", unit="frame", enabled=progress_enabled(quiet=quiet)) as bar:
            for frame in animate(synth, image, plan, fit=fit, seed=seed):
                images.append(frame.image)
                rows.append(frame.to_row(frame_name(frame.index) if fmt == "png" else ""))
                bar.update(1)
    finally:
        torch.set_num_threads(old_threads)  # in-process callers (tests, notebooks) keep theirs
    elapsed = time.perf_counter() - start
    write_frames(out, images, fmt=fmt, fps=fps, quality=quality)
    mpath = manifest_path(out, fmt)
    write_frame_manifest(mpath, rows)
    h, w = images[0].shape[:2]
    click.echo(f"animate: {len(images)} frames of {w}x{h} in {elapsed:.1f} s ({len(images) / elapsed:.2f} frames/s)",
               err=True)
    click.echo(str(out))
    click.echo(str(mpath))
