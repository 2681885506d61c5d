"""A stage that works ahead of its caller in a thread of its own, through a bounded queue: the
decoder ahead of the tracker, the tracker (and its detector) ahead of the output. Plain Python.

What the caller relies on: the items come in the order the stage made them; the stage is never
more than `limit` items ahead; an error in the stage is raised in the caller's thread at its
next item; and leaving the `with` block, however it is left, stops the stage (its generator is
closed in its own thread, so its own `with` blocks end there) and waits for the thread, at most
STOP_WAIT_S: a stage stuck in a call that does not return (a read from a source that stalled)
is left behind, to end when that call returns, so a cancel is never held up by it."""

from __future__ import annotations

import contextlib
import queue
import threading

STOP_WAIT_S = 0.3  # how long leaving waits for the stage's thread to end


@contextlib.contextmanager
def run_ahead(make_items, limit: int, name: str, while_waiting=None):
    """Iterate `make_items(left)` (a generator function; `left()` is True once the caller has
    left, for long steps to stop early) in a thread named `name`, at most `limit` items ahead;
    yields the caller's iterator over them. `while_waiting` is called every 0.1 s that the caller
    waits for an item (an interrupt check, so a cancel is not held up by the stage)."""
    items: queue.Queue = queue.Queue(maxsize=max(1, limit))
    stop = threading.Event()
    failure: list = []  # the stage's error, seen by the caller before any item still queued

    def hand_over(item) -> bool:
        while not stop.is_set():
            try:
                items.put(item, timeout=0.1)
                return True
            except queue.Full:
                pass
        return False

    def produce():
        try:
            with contextlib.closing(make_items(stop.is_set)) as made:
                for item in made:
                    if not hand_over(item):
                        return
            hand_over(_END)
        except BaseException as err:  # noqa: BLE001 - raised again in the caller's thread
            failure.append(err)
            hand_over(_END)  # wakes the caller, who raises it

    def consume():
        while True:
            try:
                item = items.get(timeout=0.1)
            except queue.Empty:
                if while_waiting is not None:
                    while_waiting()
                continue
            if failure:
                raise failure[0]
            if item is _END:
                return
            yield item

    thread = threading.Thread(target=produce, name=name, daemon=True)
    thread.start()
    try:
        yield consume()
    finally:
        stop.set()
        thread.join(timeout=STOP_WAIT_S)


_END = object()
