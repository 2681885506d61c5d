"""A stage that works ahead of its caller in a thread of its own, through a bounded queue: the
decoder ahead of the tracker, the tracker (and its detector) ahead of the output. Plain Python.

What the caller relies on: the items come in the order the stage made them; the stage is never
more than `limit` items ahead; an error in the stage stops the run (common.stop) and is raised
in the caller's thread at its next item; and leaving the `with` block, however it is left,
stops the stage (its generator is closed in its own thread, so its own `with` blocks end
there) and waits for the thread, at most
STOP_WAIT_S: a stage stuck in a call that does not return (a read from a source that stalled)
is left behind, to end when that call returns, so a cancel is never held up by it."""

from __future__ import annotations

import contextlib
import queue
import threading

from .stop import POLL_S, StopSignal

STOP_WAIT_S = 0.3  # how long leaving waits for the stage's thread to end


@contextlib.contextmanager
def run_ahead(make_items, limit: int, name: str, stop: StopSignal):
    """Iterate `make_items(left)` (a generator function; `left()` is True once the caller has
    left or the run stopped, for long steps to end early) in a thread named `name`, at most
    `limit` items ahead; yields the caller's iterator over them. The run's `stop` ends the stage
    at its next item, and is checked every POLL_S that the caller waits for one (so a cancel is
    not held up by a stage that stalls); an error in the stage stops the run."""
    items: queue.Queue = queue.Queue(maxsize=max(1, limit))
    left = threading.Event()
    failure: list = []  # the stage's error, seen by the caller before any item still queued

    def gone() -> bool:
        return left.is_set() or stop.is_set

    def hand_over(item) -> bool:
        while not gone():
            try:
                items.put(item, timeout=POLL_S)
                return True
            except queue.Full:
                pass
        return False

    def produce():
        try:
            with contextlib.closing(make_items(gone)) as made:
                for item in made:
                    if not hand_over(item):
                        return
            hand_over(_END)
        except BaseException as err:  # noqa: BLE001 - raised again in the caller's thread
            failure.append(err)  # the caller raises it within POLL_S
            if not left.is_set():  # a stage stopped because its caller left is no failure of the run
                stop.stop(err)

    def consume():
        while True:
            try:
                item = items.get(timeout=POLL_S)
            except queue.Empty:
                if failure:
                    raise failure[0]
                stop.check()
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
        left.set()
        thread.join(timeout=STOP_WAIT_S)


_END = object()
