"""Who each face is: the followed person, everyone else seen in view, and the marked person.

The tracker (tracker.py) decides where to look and which boxes are faces; this module decides
whose they are, by the face recognition descriptor (recognition/: dlib's network), read once per
face per look, never per frame:

- Where a shot starts, the track begins on the face the `face` setting picks (largest, left-most,
  right-most: by place; marked: the face that is the marked person, or nobody). Every other face
  in view is somebody else, and stays somebody else.
- A box overlapping where the followed face is expected continues the track only if it is not
  somebody else: near the followed person's looks (under OTHER_PERSON), and not clearly nearer
  (by LEAD) to anyone else seen; its place breaks a tie (twins side by side). A turn of the head
  or a new expression adds a look.
- A followed face that was lost (a hand, a card, a passer-by, a turn, a step out of the picture)
  is taken back only by a face that is the same person with nothing else to go by (under
  SAME_PERSON), and clearly nearer to them than to anyone else seen, wherever it stands.

Without the recognition files nobody's identity is known, and the rules can only give nobody: a
box continues the track only where it alone overlaps the expected place, a lost face is not
taken back until the next cut, and `marked` follows nobody.
"""

from __future__ import annotations

import bisect

import numpy as np

from .boxes import nearest, pick_face
from .recognition import OTHER_PERSON, SAME_PERSON, distance

NEW_LOOK = 0.15  # a descriptor this far from every look kept is a new look (a turn, an expression)
LEAD = 0.1  # a face found with nothing but its looks to go by must be this much nearer to the
# person than to anyone else (a near tie is nobody's; real faces: 0.18 and more)
MAX_LOOKS = 12  # looks kept per person: the first, and the latest others
MAX_OTHERS = 32  # other people remembered


class Person:
    """The descriptors one person was seen with."""

    def __init__(self, descriptor: np.ndarray):
        self.looks = [descriptor]

    def distance(self, descriptor) -> float:
        return min(distance(look, descriptor) for look in self.looks)

    def learn(self, descriptor):
        """Keep `descriptor` as a new look if it is new (a turn, an expression) and surely theirs:
        under SAME_PERSON from the first look, so the looks never drift step by step towards
        somebody else (a man turning and shouting through a clip stayed within 0.48)."""
        if (descriptor is not None and self.distance(descriptor) > NEW_LOOK
                and distance(self.looks[0], descriptor) < SAME_PERSON):
            self.looks.append(descriptor)
            if len(self.looks) > MAX_LOOKS:
                del self.looks[1]


class People:
    def __init__(self, recognizer, choice: str, marks=()):
        self.recognizer = recognizer  # recognition.FaceRecognizer, or None: identity unknown
        self.choice = choice
        self.pending_marks = list(marks)  # strokes not yet bound to a face
        self.unmatched_marks: list = []  # frames of strokes with no face under them
        self.marked: Person | None = None
        self.followed: Person | None = None
        self.others: list[Person] = []
        # frames where the followed face was seen, and where a whole-frame look missed it: without
        # identity, a face may continue only from a sighting with no miss since
        self.sightings: list[int] = []
        self.misses: list[int] = []
        self._read = (None, None, {})  # (frames, frame index, box -> descriptor) of the last frame read

    @property
    def knows_identity(self) -> bool:
        return self.recognizer is not None

    def describe(self, frames, index: int, boxes) -> list:
        """Each box's descriptor (None: unreadable, or identity unknown). A face read in this
        frame already (a box that did not continue the track, looked at again in the whole
        frame) is not read twice."""
        if self.recognizer is None or len(boxes) == 0:
            return [None] * len(boxes)
        if self._read[0] is not frames or self._read[1] != index:
            self._read = (frames, index, {})
        known = self._read[2]
        keys = [tuple(round(float(v), 3) for v in box[:4]) for box in boxes]
        new = [k for k, key in enumerate(keys) if key not in known]
        for k, descriptor in zip(new, self.recognizer.describe(frames, index, [boxes[k] for k in new])):
            known[keys[k]] = descriptor
        return [known[key] for key in keys]

    # ------------------------------------------------------------------ marks

    def bind_mark(self, mark, frames, index: int, boxes) -> int | None:
        """The stroke `mark`, painted on frame `index`, marks the face under it among `boxes`
        (whole-frame boxes of that frame): which one (None: no face there)."""
        self.pending_marks.remove(mark)
        under = [k for k, b in enumerate(boxes) if mark.covers(b)]
        if not under:
            self.unmatched_marks.append(index)
            return None
        k = under[nearest(np.asarray(boxes)[under], mark.point)]
        descriptor = self.describe(frames, index, [boxes[k]])[0]
        if descriptor is not None:
            if self.marked is None:
                self.marked = Person(descriptor)
            else:
                self.marked.learn(descriptor)
        return k

    # ------------------------------------------------------------------ a shot's track

    def new_shot(self):
        """A cut: the followed face is chosen again where the next shot starts."""
        self.followed = None
        self.sightings, self.misses = [], []

    def missed(self, index: int):
        """A look at the whole of frame `index` did not find the followed face."""
        bisect.insort(self.misses, index)

    def _seen(self, index: int):
        bisect.insort(self.sightings, index)

    def _unbroken(self, index: int) -> bool:
        """The followed face was seen before frame `index` with no miss in between."""
        k = bisect.bisect_right(self.sightings, index) - 1
        if k < 0:
            return False
        after = bisect.bisect_right(self.misses, self.sightings[k])
        return after == len(self.misses) or self.misses[after] >= index

    def start(self, frames, index: int, boxes):
        """Which of `boxes` (a whole-frame look where no face is followed yet) the track begins
        on, or None; every other face in view is remembered as somebody else."""
        seen = self.describe(frames, index, boxes)
        if self.choice != "marked":
            k = pick_face(np.asarray(boxes), self.choice)
        elif self.marked is not None:
            k = self._best(seen, self.marked)
        else:
            k = None  # nobody marked, or identity unknown: nobody
        if k is None:
            self._remember_others(seen, found=None)
            return None
        self.followed = Person(seen[k]) if seen[k] is not None else None
        self._seen(index)
        if self.followed is not None:  # whoever this was before (another shot's bystander), now followed
            self.others = [p for p in self.others if p.distance(seen[k]) >= SAME_PERSON]
        self._remember_others(seen, found=k)
        return k

    def continues(self, frames, index: int, boxes, k: int, alone: bool) -> bool:
        """Box k overlaps where the followed face is expected: is it the followed face?
        `alone`: no other box overlaps that place."""
        seen = self.describe(frames, index, [boxes[k]])[0]
        if self.followed is None or seen is None:
            # identity unknown (no files, a face too small to read): only an unambiguous overlap,
            # and only where the face was never lost in between
            if not (alone and self._unbroken(index)):
                return False
            if seen is not None:  # readable at last: who it is from now on
                self.followed = Person(seen)
        else:
            own = self.followed.distance(seen)
            if own >= OTHER_PERSON or self._nearest_other(seen) < own - LEAD:
                return False  # somebody else, or clearly nearer to somebody else
            self.followed.learn(seen)
        self._seen(index)
        return True

    def take_back(self, frames, index: int, boxes) -> int | None:
        """The followed face was lost: which of `boxes` (a whole-frame look) is it, or None.
        The faces that are certainly somebody else are remembered as such."""
        seen = self.describe(frames, index, boxes)
        if self.followed is None:
            return None
        k = self._best(seen, self.followed)
        self._remember_others(seen, found=k)
        if k is not None:
            self.followed.learn(seen[k])
            self._seen(index)
        return k

    # ------------------------------------------------------------------ helpers

    def _best(self, seen: list, person: Person) -> int | None:
        """The face in `seen` that is `person` with confidence: under SAME_PERSON from their
        looks, nearer to them than to anyone else remembered by LEAD, and the nearest of those."""
        best, best_distance = None, SAME_PERSON
        for k, descriptor in enumerate(seen):
            if descriptor is None:
                continue
            d = person.distance(descriptor)
            if d < best_distance and d <= self._nearest_other(descriptor) - LEAD:
                best, best_distance = k, d
        return best

    def _nearest_other(self, descriptor) -> float:
        return min((p.distance(descriptor) for p in self.others), default=np.inf)

    def _remember_others(self, seen: list, found: int | None):
        """Faces of one look that are somebody else from now on: beside the followed face
        (`found`), every other face in view; without it, those certainly not the followed or
        marked person."""
        for k, descriptor in enumerate(seen):
            if k == found or descriptor is None:
                continue
            if found is None and any(p is not None and p.distance(descriptor) < SAME_PERSON
                                     for p in (self.followed, self.marked)):
                continue  # perhaps them, seen poorly: not known to be somebody else
            known = [p for p in self.others if p.distance(descriptor) < SAME_PERSON]
            if known:
                min(known, key=lambda p: p.distance(descriptor)).learn(descriptor)
            else:
                self.others.append(Person(descriptor))
                del self.others[:-MAX_OTHERS]
