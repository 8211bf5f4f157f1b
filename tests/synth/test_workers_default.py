"""The default number of workers: a pure rule from the job's size and the cores; --workers N obeyed."""

from __future__ import annotations

import dataclasses

import pytest

from affectsynth.workers import MEASURED, choose_workers, default_workers


def test_small_jobs_stay_in_process_large_ones_use_the_cores():
    # 2 cores: 6 photos x 8 targets do not pay for the workers' start; 12 do (measured 12.9 vs 9.2 outputs/s)
    assert default_workers(6, 8, 2) == 1
    assert default_workers(12, 8, 2) == 2
    assert default_workers(1, 8, 64) == 1  # one image cannot be shared
    assert default_workers(5000, 8, 2) == 2
    # were the workers to share the cores badly (torch threads in-process), 2 cores would stay in-process
    assert default_workers(5000, 8, 2, costs=dataclasses.replace(MEASURED, efficiency=0.5)) == 1
    assert default_workers(5000, 8, 4) == 4
    many = default_workers(5000, 8, 16)
    assert 2 < many <= 16
    assert default_workers(3, 8, 16) <= 3  # never more workers than images
    assert default_workers(5000, 8, 1) == default_workers(5000, 8, None) == default_workers(5000, 8, 0) == 1


def test_more_work_never_means_fewer_workers():
    for cores in (2, 4, 16):
        for n_targets in (1, 8, 40):
            picks = [default_workers(n, n_targets, cores) for n in range(1, 4000, 37)]
            assert picks == sorted(picks), (cores, n_targets, picks)
            assert picks[-1] > 1, (cores, n_targets)  # a big enough job goes parallel


def test_the_rule_follows_the_measured_costs():
    cheap_start = dataclasses.replace(MEASURED, start_s=0.01)
    dear_start = dataclasses.replace(MEASURED, start_s=60.0)
    assert default_workers(3, 8, 4, costs=cheap_start) == 3
    assert default_workers(200, 8, 4, costs=dear_start) == 1
    # break-even on 4 cores: the first job size that goes to workers is larger with a dearer start
    first = [next(n for n in range(1, 10_000) if default_workers(n, 8, 4, costs=c) > 1)
             for c in (cheap_start, MEASURED)]
    assert first[0] < first[1]


def test_choice_notes_and_explicit_workers_are_obeyed():
    auto = choose_workers(None, 4, 8, 2)
    assert (auto.workers, auto.explicit, auto.note) == (1, False, "in-process: job too small for workers")
    assert choose_workers(None, 5000, 8, 4).note == "4 workers"
    assert choose_workers(None, 5000, 8, 1).note == "in-process: one core"
    forced = choose_workers(2, 3, 8, 2)  # an explicit --workers is always obeyed, even on a tiny job
    assert (forced.workers, forced.explicit) == (2, True) and forced.note == "2 workers (--workers 2)"
    assert choose_workers(1, 5000, 8, 16).workers == 1
    assert choose_workers(1, 5000, 8, 16).note == "in-process (--workers 1)"
    assert choose_workers(4, 10, 8, 2, given_synthesizer=True).workers == 1


@pytest.mark.parametrize("bad", [0, -3])
def test_settings_refuse_bad_worker_counts(bad):
    from affectsynth.batch import GenerateSettings
    from affectsynth.blendshapes import Expression

    with pytest.raises(ValueError, match="--workers"):
        GenerateSettings(targets=(Expression("happiness"),), workers=bad)
    assert GenerateSettings(targets=(Expression("happiness"),), workers=None).workers is None
