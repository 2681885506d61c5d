"""A step's progress as one part of a bigger one: the generator's, then a restore model's, each
moving the same bar over its own share."""

from __future__ import annotations


def part(on_slice, index: int, parts: int):
    """`on_slice(done, total)` for part `index` of `parts` equal parts of `on_slice`'s scale
    (None stays None)."""
    if on_slice is None:
        return None
    return lambda done, total: on_slice(index * total + done, parts * total)
