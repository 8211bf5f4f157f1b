"""Consume a blocking stream with a stall timeout: a stream that stops producing cannot hang its reader.

The Ray engine's driver reads Ray Data's result stream this way (Ray Data 2.60 once waited 14
minutes inside its iterator after an image killed every actor). The stream is iterated by a daemon
thread that puts each item on a queue; the reader takes from the queue in short slices (so that a
signal such as Ctrl-C is handled at once) and raises `StreamStalled` when no item arrived for
``timeout_s``. Exceptions raised by the stream reach the reader unchanged, in order.
"""

from __future__ import annotations

import queue
import threading
import time
from typing import Iterable, Iterator, TypeVar

__all__ = ["StreamStalled", "stream_with_stall_timeout"]

T = TypeVar("T")

_ITEM, _ERROR, _END = "item", "error", "end"


class StreamStalled(Exception):
    """No item came from the stream for ``timeout_s`` seconds (the thread reading it is abandoned)."""

    def __init__(self, timeout_s: float) -> None:
        super().__init__(f"no result for {timeout_s:g} s (stalled)")
        self.timeout_s = timeout_s


def stream_with_stall_timeout(items: Iterable[T], timeout_s: float, *, poll_s: float = 0.25,
                              name: str = "stream-reader") -> Iterator[T]:
    """Yield the items of ``items`` (iterated in a daemon thread) until it ends, raises or stalls.

    Args:
        items: the stream; it is iterated only in the background thread (a generator's body runs there).
        timeout_s: seconds without an item (counted from the start, then from the reader's return
            after each item: the reader's own work does not count) before `StreamStalled`.
        poll_s: longest single wait on the queue; keeps the waiting thread responsive to signals.
        name: the thread's name (seen in stack dumps).

    Raises:
        StreamStalled: nothing came for ``timeout_s``. The background thread is left blocked in the
            stream (a daemon: it never keeps the process alive); the caller ends what feeds it.
        Whatever ``items`` raises.
    """
    if not timeout_s > 0:
        raise ValueError(f"stall timeout: expected seconds > 0, got {timeout_s}")
    q: queue.Queue = queue.Queue()
    abandoned = threading.Event()  # the reader is gone: the thread stops at the next item

    def pump() -> None:
        try:
            for item in items:
                if abandoned.is_set():
                    return
                q.put((_ITEM, item))
        except BaseException as e:  # noqa: BLE001  (handed to the reader, which raises it)
            q.put((_ERROR, e))
        else:
            q.put((_END, None))

    threading.Thread(target=pump, name=name, daemon=True).start()
    try:
        last = time.monotonic()
        while True:
            left = timeout_s - (time.monotonic() - last)
            if left <= 0:
                raise StreamStalled(timeout_s)
            try:
                kind, value = q.get(timeout=min(poll_s, left))
            except queue.Empty:
                continue
            if kind == _END:
                return
            if kind == _ERROR:
                raise value
            yield value
            last = time.monotonic()
    finally:
        abandoned.set()
