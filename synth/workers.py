"""How many worker processes a `generate` run uses when ``--workers`` is not given: chosen from the job.

A worker costs a fixed start (process start, imports, building its Synthesizer) before its first output;
the in-process run pays only the Synthesizer build. Workers pay off only when the job's work,
shared between them, saves more than that start. :func:`default_workers` compares the predicted
times with costs measured by ``scripts/bench_workers.py`` (`MEASURED`); an explicit ``--workers N``
never goes through it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["MEASURED", "WorkerChoice", "WorkerCosts", "choose_workers", "default_workers"]


@dataclass(frozen=True)
class WorkerCosts:
    """Costs the default number of workers is chosen from (seconds; one thread per process).

    Attributes:
        start_s: one worker's start: process start + imports + building its Synthesizer (CPU time;
            measured with spawned workers: forked from `affectsynth.pool`'s fork server, workers
            after the first skip the imports, so this overstates their start).
        build_s: building the Synthesizer in this process (what an in-process run pays instead).
        per_image_s: one source image: load, detect, fit, crop (CPU time).
        per_target_s: one output: synthesise + write, the image's texture unwrap shared out.
        efficiency: the rate of W workers / (W x the in-process rate) on free cores; under 1
            because the main process keeps the manifest and the workers compete for memory
            bandwidth.
        margin: workers are used only if they are predicted at least this fraction faster
            (a near tie goes to the simpler in-process run).
    """

    start_s: float
    build_s: float
    per_image_s: float
    per_target_s: float
    efficiency: float = 0.95
    margin: float = 0.15


#: Measured with ``scripts/bench_workers.py`` on the 2-core dev machine (torch 2.13.0 CPU, 256 px
#: crops of the astronaut photo, 8 targets; CPU time, medians of 3, load average 0.3-4 from other
#: jobs): worker start 1.69-1.80 s (spawn + imports 1.08-1.19 s, Synthesizer 0.55-0.60 s; 2.0-5.6 s
#: wall seen by the parent), in-process Synthesizer build 0.54-0.67 s, per image 0.083-0.090 s, per
#: output 0.047-0.055 s. ``efficiency`` 0.95: every engine synthesises on one torch thread per
#: process (`affectsynth.batch.SYNTH_THREADS`), so the in-process run uses one core and W workers
#: add W; ``scripts/bench_generate.py --photos 12`` (load 0.7-1.1) measured the steady rate of 2
#: workers at 2.16x the in-process one (27.6 vs 12.8 outputs/s) and 12 photos x 8 targets end to end
#: at 12.9 vs 9.2 outputs/s. (Before one thread was the rule, the in-process run used both cores
#: through torch's threads and was the faster one at 12 photos: issue 13's 11.6 vs 12.3 outputs/s.)
MEASURED = WorkerCosts(start_s=1.75, build_s=0.6, per_image_s=0.085, per_target_s=0.05)


def _predicted_s(workers: int, n_jobs: int, n_targets: float, cpu_count: int, costs: WorkerCosts) -> float:
    """Predicted seconds of a run: in-process (``workers == 1``) or on a pool of ``workers``."""
    work = n_jobs * (costs.per_image_s + n_targets * costs.per_target_s)
    if workers == 1:
        return costs.build_s + work
    cores = min(workers, cpu_count)
    starts = costs.start_s * math.ceil(workers / cores)  # the starts run side by side, a core each
    return starts + work / (cores * costs.efficiency)


def default_workers(n_jobs: int, n_targets: float, cpu_count: int | None, *, costs: WorkerCosts = MEASURED) -> int:
    """The number of worker processes for a job (1 = in this process), from its size and the cores.

    The run's predicted time in-process is ``build_s + work`` and on W workers
    ``start_s + work / (min(W, cores) x efficiency)``, where ``work = n_jobs x (per_image_s +
    n_targets x per_target_s)``. The fewest workers within 2% of the fastest prediction is chosen,
    and it must beat in-process by ``margin``. With `MEASURED`: on 2 cores 6 images x 8 targets stay
    in-process and 12 go to 2 workers (their start is paid back from about 8 images).

    Args:
        n_jobs: source images to process.
        n_targets: outputs per image (the mean, after ``--per-image`` and resumed outputs).
        cpu_count: cores (``os.cpu_count()``; None or < 1 counts as 1).
        costs: the measured costs.

    Returns:
        Workers in ``[1, min(cpu_count, n_jobs)]``.

    Example:
        >>> default_workers(6, 8, 2), default_workers(12, 8, 2), default_workers(12, 8, 16), default_workers(500, 8, 1)
        (1, 2, 12, 1)
    """
    cores = max(1, int(cpu_count or 1))
    top = min(cores, int(n_jobs))
    if top <= 1:
        return 1
    inproc = _predicted_s(1, n_jobs, n_targets, cores, costs)
    times = {w: _predicted_s(w, n_jobs, n_targets, cores, costs) for w in range(2, top + 1)}
    fastest = min(times.values())
    best = min(w for w, t in times.items() if t <= fastest * 1.02)
    return best if times[best] <= inproc * (1 - costs.margin) else 1


@dataclass(frozen=True)
class WorkerChoice:
    """How a run is executed and why (printed in the summary and the progress bar).

    Attributes:
        workers: worker processes; 1 = in this process.
        explicit: ``--workers`` was given (always obeyed).
        note: e.g. "2 workers", "in-process: job too small for workers", "in-process (--workers 1)".
    """

    workers: int
    explicit: bool
    note: str


def choose_workers(requested: int | None, n_jobs: int, n_targets: float, cpu_count: int | None, *,
                   given_synthesizer: bool = False, costs: WorkerCosts = MEASURED) -> WorkerChoice:
    """The run's `WorkerChoice`: ``requested`` (``--workers N``) if given, else `default_workers`.

    Args:
        requested: the explicit number of workers, or None for the default.
        n_jobs: source images to process.
        n_targets: outputs per image (mean).
        cpu_count: cores.
        given_synthesizer: the caller passed its own Synthesizer: in-process, whatever else.
        costs: the measured costs.
    """
    if given_synthesizer:
        return WorkerChoice(1, requested is not None, "in-process: a Synthesizer was given")
    if requested is not None:
        n = max(1, min(int(requested), max(1, n_jobs)))
        note = "in-process (--workers 1)" if requested == 1 else f"{n} workers (--workers {requested})"
        return WorkerChoice(int(requested), True, note)
    n = default_workers(n_jobs, n_targets, cpu_count, costs=costs)
    if n > 1:
        return WorkerChoice(n, False, f"{n} workers")
    cores = max(1, int(cpu_count or 1))
    why = "one core" if cores == 1 else ("one image" if n_jobs <= 1 else "job too small for workers")
    return WorkerChoice(1, False, f"in-process: {why}")
