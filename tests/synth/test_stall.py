"""`affectsynth.stall.stream_with_stall_timeout`: a stream that stops producing cannot hang its reader.

Real threads and queues, streams made of plain generators (the Ray engine feeds it Ray Data's
result stream; tests/synth/test_ray_engine.py covers that end to end). The only time bound asserted
is the stall timeout itself.
"""

from __future__ import annotations

import signal
import threading

import pytest

from affectsynth.stall import StreamStalled, stream_with_stall_timeout


def _blocks_after(items, release: threading.Event):
    yield from items
    release.wait(60)  # the stalled stream (released at the end of the test, so the thread ends)


def test_items_come_through_in_order_and_the_stream_ends():
    assert list(stream_with_stall_timeout(iter(range(50)), 5.0, poll_s=0.01)) == list(range(50))


def test_a_stalled_stream_raises_stream_stalled_after_the_items_that_came():
    release = threading.Event()
    got = []
    try:
        with pytest.raises(StreamStalled) as e:
            for x in stream_with_stall_timeout(_blocks_after(["a", "b"], release), 0.3, poll_s=0.05):
                got.append(x)
    finally:
        release.set()
    assert got == ["a", "b"]
    assert e.value.timeout_s == 0.3 and "0.3 s (stalled)" in str(e.value)


def test_an_error_raised_by_the_stream_reaches_the_reader_unchanged():
    boom = ValueError("batch failed")

    def failing():
        yield 1
        raise boom

    got = []
    with pytest.raises(ValueError) as e:
        for x in stream_with_stall_timeout(failing(), 5.0, poll_s=0.01):
            got.append(x)
    assert got == [1] and e.value is boom


def test_a_signal_interrupts_the_wait_long_before_the_stall_timeout():
    """As Ctrl-C does in the driver: the handler's exception is raised in the waiting main thread."""
    release = threading.Event()

    def handler(signum, frame):
        raise KeyboardInterrupt

    old = signal.signal(signal.SIGALRM, handler)
    signal.setitimer(signal.ITIMER_REAL, 0.2)
    try:  # a reader deaf to signals would wait the 120 s and raise StreamStalled instead
        with pytest.raises(KeyboardInterrupt):
            list(stream_with_stall_timeout(_blocks_after([], release), 120.0))
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
        release.set()


def test_a_timeout_must_be_positive():
    with pytest.raises(ValueError, match="stall timeout"):
        list(stream_with_stall_timeout(iter([]), 0))
