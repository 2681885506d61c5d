"""Stretches of True in a 1-D flag array (faceless frames, chunks of speech), found once. NumPy."""

from __future__ import annotations

import numpy as np


def runs_of(flags: np.ndarray) -> list:
    """(start, stop) of each run of True in a 1-D bool array."""
    edges = np.flatnonzero(np.diff(np.concatenate(([0], np.asarray(flags).astype(np.int8), [0]))))
    return list(zip(edges[::2], edges[1::2]))
