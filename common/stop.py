"""The one cancel signal of a run: set once by whatever stops it, observed by every stage and thread.

What stops a run reaches it in one of two ways, and both end here. The caller's own interrupt
check (`outside`: ComfyUI's Cancel, the command line's remembered SIGTERM) is asked at every
`check()`, from whichever thread checks; an exception raised in the run's own thread (Ctrl-C's
KeyboardInterrupt, SIGTERM's handler, any error) passes through `scope()`. Either way the first
reason is kept and the signal is set: every stage's next `check()` raises `Stopped`, every wait
that polls `is_set` ends, and the run raises the reason itself (so ComfyUI sees its own
interrupt, the command line its KeyboardInterrupt). Plain Python."""

from __future__ import annotations

import contextlib
import threading

POLL_S = 0.1  # how often a stage that waits (for a frame, a batch) looks at the signal


class Stopped(Exception):
    """Raised in a stage once its run has stopped; the run raises the reason why."""


class StopSignal:
    """One run's cancel signal. `outside()` raises to stop the run (None: nothing outside stops
    it); `reason` is the first exception that stopped it."""

    def __init__(self, outside=None):
        self._outside = outside
        self._set = threading.Event()
        self._lock = threading.Lock()
        self.reason: BaseException | None = None

    @property
    def is_set(self) -> bool:
        return self._set.is_set()

    def stop(self, reason: BaseException | None = None):
        """Stop the run (`reason`: why, when this is the first to say)."""
        with self._lock:
            if self.reason is None and reason is not None and not isinstance(reason, Stopped):
                self.reason = reason
            self._set.set()

    def check(self):
        """Raise if the run has stopped, asking the caller's own interrupt check first."""
        if not self._set.is_set() and self._outside is not None:
            try:
                self._outside()
            except BaseException as err:
                self.stop(err)
                raise
        if self._set.is_set():
            raise Stopped()

    @contextlib.contextmanager
    def scope(self):
        """The run: however it ends, the signal is set, so no stage or thread outlives it; an
        exception ends it with that reason, and a stage's `Stopped` is raised as the reason the
        run stopped (ComfyUI's interrupt, an error in another thread)."""
        try:
            yield self
        except Stopped:
            self.stop()
            if self.reason is not None:
                raise self.reason from None
            raise
        except BaseException as err:
            self.stop(err)
            raise
        finally:
            self.stop()
