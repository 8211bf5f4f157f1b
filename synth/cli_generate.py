"""``affectsynth generate``: synthesise expressions for every image under a folder (see `affectsynth.batch`)."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import click

from affectsynth.cli_targets import aus_option, expression_names_option, expression_targets_option, intensities_option
from affectsynth.labels import CATEGORIES, parse_va, va_grid_points

__all__ = ["build_targets", "generate_command"]


def build_targets(expressions: str | None, intensities: tuple[str, ...], va: tuple[str, ...],
                  va_grid: int | None, aus: tuple[str, ...] = (), paths: bool = False) -> list:
    """The run's targets from the command-line options (raises click.BadParameter/UsageError).

    Every expression at every intensity (default 1.0), then every ``--va`` point, then the
    ``--va-grid`` points, then every ``--aus`` target; with none of
    ``--expressions/--va/--va-grid/--aus`` all 8 categories, or none when ``paths``
    (``--paths`` given: its sequences alone).
    """
    from affectsynth.blendshapes.targets import VA

    if intensities and expressions is None and (va or va_grid or aus or paths):
        raise click.UsageError("--intensity applies to --expressions only; add --expressions "
                               "(e.g. --expressions happiness,sadness) or drop --intensity"
                               + (" (a path's intensity goes in the --paths file)" if paths else ""))
    ints = intensities_option(intensities)
    names = expression_names_option(expressions, default=() if (va or va_grid or aus or paths) else CATEGORIES)
    targets = expression_targets_option(names, ints)
    points: list[tuple[float, float]] = []
    for text in va:
        try:
            points.append(parse_va(text))
        except ValueError as e:
            raise click.BadParameter(str(e), param_hint="--va") from None
    if va_grid is not None:
        try:
            points.extend(va_grid_points(va_grid))
        except ValueError as e:
            raise click.BadParameter(str(e), param_hint="--va-grid") from None
    seen = set()
    for v, a in points:
        t = VA(v, a)
        if (round(v, 2), round(a, 2)) in seen:  # same output name: keep the first
            continue
        seen.add((round(v, 2), round(a, 2)))
        targets.append(t)
    targets.extend(aus_option(aus))
    return targets


EPILOG = """\b
Examples:
  affectsynth generate faces/ out/
      all 8 categories at intensity 1.0, for the largest face of every image
  affectsynth generate faces/ out/ --expressions happiness,sadness --intensity 0.5,1.0
  affectsynth generate faces/ out/ --va=0.5,-0.25 --va=-0.8,0.6 --va-grid 3 --per-image 2
  affectsynth generate fer/train out/ --expressions all --size 48 --faces all --workers 4
  affectsynth generate faces/ out/ --dry-run --format json     # list planned outputs only
  affectsynth generate faces/ out/ --paths paths.json --size 128
      one sequence per path and face: out/img_jpg/f0_path-circle/frame_0000.png ... (format: README,
      "Affect paths"); add --expressions/--va to render single targets too
  affectsynth generate /shared/faces /shared/out --engine ray --ray-address HEAD:6379
      the same job on a Ray cluster (folders every node sees; pip install 'affectsynth[ray]')

\b
Outputs: OUTPUT_DIR/<subfolders>/<stem>_<ext>/f<face>_<target>.png (lossless PNG), e.g.
  out/train/img_jpg/f0_happiness_i1.00.png, out/img_png/f0_va_+0.50_-0.25.png
  and OUTPUT_DIR/manifest.csv, one row per output (status ok/error/skipped + reason).
  --paths frames: OUTPUT_DIR/<subfolders>/<stem>_<ext>/f<face>_path-<name>/frame_NNNN.png, a row each
  (sequence, frame, time_s columns); a sequence's draws are shared by its frames.
  --image-format webp: the same names ending in .webp (lossless WebP: same pixels, smaller files).
Rerunning the same command resumes: done outputs are skipped; outputs that failed for a passing
reason (write-failed, worker-crashed) are retried, permanent failures (unreadable, fit-failed,
synth-failed) only with --retry-errors. One run at a time per OUTPUT_DIR (a second one refuses,
naming the first, or waits with --wait). OUTPUT_DIR/run.json records the settings; a rerun with
settings that change existing outputs (--size, --seed, ...) refuses (exit 2), naming each one
(old -> new); --overwrite redoes those outputs.
Exit codes: 0 done, 1 fatal error (e.g. disk full), 2 bad usage, 3 finished but some inputs failed
in this run, 130 interrupted (Ctrl-C), 143 terminated (SIGTERM); rerun to resume.
"""


def _pair(text: str, flag: str) -> tuple[float, float]:
    try:
        a, b = (float(x) for x in text.split(","))
    except ValueError:
        raise click.UsageError(f"{flag}: expected two numbers like 10,5, got {text!r}") from None
    return a, b


@click.command("generate", epilog=EPILOG, context_settings={"max_content_width": 100})
@click.argument("input_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("output_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--expressions", metavar="LIST",
              help="Comma-separated categories (neutral, happiness, sadness, surprise, fear, anger, "
                   "disgust, contempt; or 'all'). Default: all, unless --va/--va-grid is given.")
@click.option("--intensity", "intensities", multiple=True, metavar="LIST",
              help="Comma-separated intensities in [0, 1] for every expression (default 1.0).")
@click.option("--va", "va", multiple=True, metavar="V,A",
              help="A valence,arousal target in [-1, 1]^2; repeatable. Write --va=V,A for negatives.")
@click.option("--va-grid", type=int, metavar="N",
              help="Add an N x N lattice over [-1, 1]^2 (points outside the unit disc are moved onto it).")
@click.option("--aus", "aus", multiple=True, metavar="AU=X,...",
              help="An Action Unit target, e.g. --aus AU12=0.8,AU6=0.5; repeatable (each one target).")
@click.option("--per-image", type=int, metavar="K",
              help="Draw K targets per image (seeded by --seed and the image's path) instead of all.")
@click.option("--size", type=int, metavar="S",
              help="Write an S x S crop centred on the face (default: the input's size).")
@click.option("--faces", type=click.Choice(["largest", "all"]), default="largest", show_default=True,
              help="Which faces of a photo to synthesise.")
@click.option("--workers", type=int, default=None, metavar="N",
              help="Worker processes; 1 = in this process. Always obeyed when given. Default: chosen from the job "
                   "(images x targets) and the CPU cores: small jobs stay in-process, where starting workers "
                   "costs more than it saves (the summary says which).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of target draws and synthesis.")
@click.option("--expressions-lib", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              metavar="LIB.npz", help="Expression library built by `affectsynth build-expressions`.")
@click.option("--layout", type=click.Choice(["nested", "flat"]), default="nested", show_default=True,
              help="nested: keep subfolders; flat: one folder, names with a path hash.")
@click.option("--min-face", type=float, default=24.0, show_default=True, metavar="PX",
              help="Skip faces whose box is smaller than PX pixels (shorter side).")
@click.option("--device", default="cpu", show_default=True, help="torch device for synthesis.")
@click.option("--png-compression", type=click.IntRange(0, 9), default=1, show_default=True, metavar="0-9",
              help="zlib level of the output PNGs (lossless at every level; 0 is fastest).")
@click.option("--image-format", type=click.Choice(["png", "webp"]), default="png", show_default=True,
              help="File format of the outputs, both lossless: webp files are ~28% smaller, for ~3.5 ms more CPU "
                   "per 256 px output.")
@click.option("--head-rotation", default="0,0", show_default=True, metavar="YAW,PITCH",
              help="Random extra head rotation per output, up to these degrees (3D augmentation; off by default; "
                   "at most 15,10: what one photo supports).")
@click.option("--relight", type=click.FloatRange(0, 1), default=0.0, show_default=True, metavar="S",
              help="Random relighting per output with strength up to S in [0, 1] (off by default).")
@click.option("--verify", is_flag=True,
              help="Detect and fit every output again and record how well its target comes back (verify_* "
                   "columns; about 0.2 s per output).")
@click.option("--min-verify", type=click.FloatRange(0, 1), default=None, metavar="X",
              help="Reject outputs whose verification score is under X: status=rejected rows with the score, "
                   "no file (implies --verify; about 0.1 keeps what reads, see scripts/bench_fidelity.py).")
@click.option("--retry-errors", is_flag=True,
              help="Also retry outputs that failed permanently in earlier runs (unreadable, fit-failed, ...).")
@click.option("--wait", "wait_lock", is_flag=True,
              help="If another run is writing into OUTPUT_DIR, wait for it to finish instead of refusing.")
@click.option("--dry-run", is_flag=True, help="List planned outputs and exit; nothing is loaded or written.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True,
              help="stdout format of the result (the summary also goes to stderr).")
@click.option("--manifest-format", type=click.Choice(["csv", "parquet"]), default="csv", show_default=True,
              help="parquet: also write OUTPUT_DIR/manifest.parquet (typed columns, landmarks as lists), rebuilt "
                   "from manifest.csv (the resume journal) at the end of every run, interrupted ones included.")
@click.option("--overwrite", is_flag=True,
              help="Redo the outputs in OUTPUT_DIR that were made with other settings (recorded in run.json) "
                   "instead of refusing; the others are kept.")
@click.option("--paths", "paths_file", type=click.Path(dir_okay=False, path_type=Path), metavar="FILE",
              help="Affect sequences (JSON or .csv; format in the README, 'Affect paths'): each path is rendered "
                   "per face as frames f<face>_path-<name>/frame_NNNN.png, a row each. Alone, or with "
                   "--expressions/--va/--aus targets.")
@click.option("--engine", type=click.Choice(["local", "ray"]), default="local", show_default=True,
              help="local: processes on this machine (--workers); ray: Ray Data actors, one per --workers "
                   "(default: one per cluster CPU); OUTPUT_DIR must be a folder every node sees. "
                   "Needs pip install 'affectsynth[ray]'.")
@click.option("--ray-address", metavar="ADDR", default=None,
              help="Ray cluster to run on (HEAD:6379 or auto; with --engine ray); default: start a local Ray.")
@click.option("--ray-stall-timeout", "ray_stall_timeout", type=click.FloatRange(min=0, min_open=True), default=None,
              metavar="S",
              help="With --engine ray: if no result comes back from Ray for S seconds (actor start-up included; "
                   "default 600), stop waiting: the images still pending get worker-crashed rows, retried by the "
                   "next run.")
@click.pass_context
def generate_command(ctx: click.Context, input_dir: Path, output_dir: Path, expressions: str | None,
                     intensities: tuple[str, ...], va: tuple[str, ...], va_grid: int | None,
                     aus: tuple[str, ...], per_image: int | None, size: int | None, faces: str, workers: int | None, seed: int,
                     expressions_lib: Path | None, layout: str, min_face: float, device: str, png_compression: int,
                     image_format: str, head_rotation: str, relight: float, verify: bool, min_verify: float | None,
                     retry_errors: bool, wait_lock: bool, dry_run: bool,
                     quiet: bool, fmt: str, manifest_format: str = "csv", overwrite: bool = False,
                     paths_file: Path | None = None, engine: str = "local",
                     ray_address: str | None = None, ray_stall_timeout: float | None = None) -> None:
    """Synthesise expressions for every image under INPUT_DIR into OUTPUT_DIR.

    Images are found recursively (jpg, jpeg, png, webp, bmp, tif, tiff; any case). Targets are
    every --expressions name at every --intensity, plus every --va point and the --va-grid
    points; with --paths FILE, every frame of every affect sequence in FILE too (alone: only
    those). Bad inputs (unreadable, no face, ...) get manifest rows with a reason and never
    stop the batch.
    """
    if engine == "local" and not dry_run and workers is not None and workers > 1:
        from affectsynth.pool import start_worker_server

        start_worker_server()  # the workers' imports start now, beside the planning below
    from affectsynth.batch import GenerateSettings, Interrupted, check_dirs, plan_jobs, run_batch
    from affectsynth.manifest import Manifest
    from affectsynth.plan import SequenceChangedError
    from affectsynth.progress import progress_enabled
    from affectsynth.run_record import RunSettingsConflict, check_run_settings

    if manifest_format == "parquet":
        from affectsynth.manifest_parquet import require_pyarrow

        try:
            require_pyarrow()
        except ImportError as e:
            raise click.ClickException(str(e)) from None

    paths: tuple = ()
    if paths_file is not None:
        from affectsynth.paths_file import load_paths_file

        try:
            paths = load_paths_file(paths_file)
        except (ValueError, OSError) as e:
            raise click.BadParameter(str(e), param_hint="--paths") from None
    targets = build_targets(expressions, intensities, va, va_grid, aus, paths=bool(paths))
    if ray_address is not None and engine != "ray":
        raise click.UsageError("--ray-address needs --engine ray (e.g. --engine ray --ray-address HEAD:6379)")
    if ray_stall_timeout is not None and engine != "ray":
        raise click.UsageError("--ray-stall-timeout needs --engine ray")
    try:
        settings = GenerateSettings(
            targets=tuple(targets), per_image=per_image, size=size, faces=faces, workers=workers, seed=seed,
            expressions_lib=str(expressions_lib) if expressions_lib else None, layout=layout,
            min_face_px=min_face, device=device, png_compress_level=png_compression, image_format=image_format,
            head_rotation_deg=_pair(head_rotation, "--head-rotation"), light_strength=relight,
            verify=verify, min_verify=min_verify, paths=paths)
        check_dirs(input_dir, output_dir)
    except ValueError as e:
        raise click.UsageError(str(e)) from None

    if dry_run:
        mpath = output_dir / "manifest.csv"
        manifest = (Manifest(mpath, output_root=output_dir, readonly=True, retry_errors=retry_errors)
                    if mpath.exists() else None)
        stale_note = ""
        if manifest is not None:
            try:  # the same refusal as a real run; with --overwrite the stale outputs show as planned
                stale = check_run_settings(input_dir, output_dir, settings, manifest, overwrite=overwrite)[2]
            except (RunSettingsConflict, ValueError) as e:
                raise click.UsageError(str(e)) from None
            if stale:
                stale_note = f", {len(stale.outputs)} made with other settings to redo (--overwrite)"
        try:
            plan = plan_jobs(input_dir, output_dir, settings, manifest=manifest)
        except SequenceChangedError as e:
            raise click.UsageError(str(e)) from None
        if fmt == "json":
            click.echo(json.dumps({
                "sources": plan.sources, "jobs": len(plan.jobs), "already_done": plan.already_done,
                "planned": [{"source": s, "output": str(output_dir / o), "target": t.to_dict()}
                            for s, o, t in plan.planned_outputs]}, indent=1))
        else:
            for _s, o, _t in plan.planned_outputs:
                click.echo(str(output_dir / o))
        note = " (face 0 only; --faces all adds outputs per extra face)" if faces == "all" else ""
        click.echo(f"dry run: {plan.sources} images, {len(plan.jobs)} to process, "
                   f"{len(plan.planned_outputs)} outputs planned{note}, {plan.already_done} already done{stale_note}; "
                   "nothing written", err=True)
        return

    def waiting(holder: str) -> None:
        click.echo(f"generate: OUTPUT_DIR {output_dir} is in use by {holder}; waiting (--wait)", err=True)

    try:
        common = dict(progress=progress_enabled(quiet=quiet), retry_errors=retry_errors, wait=wait_lock,
                      on_wait=waiting, overwrite=overwrite, manifest_format=manifest_format)
        if engine == "ray":
            from affectsynth.ray_engine import RayOptions, RayUnavailableError, run_batch_ray

            stall = RayOptions.stall_timeout_s if ray_stall_timeout is None else ray_stall_timeout
            options = RayOptions(address=ray_address, workers=workers, stall_timeout_s=stall)
            try:  # workers None: the Ray engine sizes the actor pool to the cluster
                summary = run_batch_ray(input_dir, output_dir, settings, options, **common)
            except RayUnavailableError as e:
                raise click.UsageError(str(e)) from None
        else:
            summary = run_batch(input_dir, output_dir, settings, **common)
    except (RunSettingsConflict, SequenceChangedError) as e:  # bad usage: OUTPUT_DIR holds it made otherwise
        raise click.UsageError(str(e)) from None
    except KeyboardInterrupt as e:
        signum = e.signum if isinstance(e, Interrupted) else signal.SIGINT
        name = "interrupted" if signum == signal.SIGINT else f"stopped by {signal.Signals(signum).name}"
        click.echo(f"generate: {name}; outputs and rows written so far are kept: rerun the same command to "
                   "resume", err=True)
        ctx.exit(128 + int(signum))
    for line in summary.lines():
        click.echo(line, err=True)
    ray_stats = getattr(summary, "ray", None)
    if ray_stats is not None and ray_stats.actor_peak_rss_mb:
        peaks = sorted(ray_stats.actor_peak_rss_mb.values())
        click.echo(f"ray: {len(peaks)} actors, peak RSS per actor {peaks[0]:.0f}-{peaks[-1]:.0f} MiB", err=True)
    if fmt == "json":
        click.echo(json.dumps(summary.to_dict(), indent=1))
    else:
        click.echo(summary.manifest)
    if summary.n_failed:
        ctx.exit(3)
