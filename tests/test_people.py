"""The rules of who is who (face_detect/people.py), with a recognizer stand-in that hands out
chosen descriptors: what continues the track, what takes a lost face back, what is nobody's."""

import numpy as np

from conftest import pack_module

people_mod = pack_module("face_detect.people")
recognition = pack_module("face_detect.recognition")


def at(distance_from_origin: float, axis=0) -> np.ndarray:
    d = np.zeros(128, np.float32)
    d[axis] = distance_from_origin
    return d


class Descriptors:
    """A recognizer stand-in: box k of a look gets descriptors[k] (by the box's first number)."""

    def __init__(self, by_x: dict):
        self.by_x = by_x

    def describe(self, frames, index, boxes):
        return [self.by_x.get(int(b[0])) for b in boxes]


A, B = at(0.0), at(0.9, axis=1)  # two people, far apart
BOXES = np.array([[10, 0, 50, 40], [60, 0, 100, 40]], float)


def started(by_x, choice="left-most"):
    people = people_mod.People(Descriptors(by_x), choice)
    assert people.start(None, 0, BOXES) == 0
    return people


def test_a_box_that_is_somebody_seen_beside_the_followed_face_never_continues_it():
    people = started({10: A, 60: B})
    people.recognizer = Descriptors({12: B})  # the neighbour, now where A was expected
    assert not people.continues(None, 5, np.array([[12, 0, 52, 40]]), 0, alone=True)
    people.recognizer = Descriptors({12: at(0.3)})  # A, turned a little
    assert people.continues(None, 6, np.array([[12, 0, 52, 40]]), 0, alone=True)


def test_a_lost_face_is_taken_back_only_by_the_same_person_clearly_nearer_to_them():
    people = started({10: A, 60: B})
    assert people.take_back(None, 9, np.array([[60, 0, 100, 40]])) is None  # B, alone in view
    people.recognizer = Descriptors({70: at(recognition.SAME_PERSON + 0.05)})
    assert people.take_back(None, 10, np.array([[70, 0, 110, 40]])) is None  # too far to be sure
    # near A but about as near to B: a tie is nobody's
    tie = (A + B) / 2 + at(0.01, axis=2)
    people.recognizer = Descriptors({70: tie})
    assert people.take_back(None, 11, np.array([[70, 0, 110, 40]])) is None
    people.recognizer = Descriptors({70: at(0.2), 120: B})
    assert people.take_back(None, 12, np.array([[120, 0, 160, 40], [70, 0, 110, 40]])) == 1


def test_looks_are_learnt_only_when_surely_the_person_so_they_never_drift_to_somebody_else():
    person = people_mod.Person(A)
    for step in np.arange(0.2, 1.0, 0.1):  # a chain of small steps towards B
        person.learn(A + (B - A) * step)
    assert person.distance(B) >= recognition.SAME_PERSON


def test_without_identity_a_face_continues_only_unbroken_and_alone():
    people = people_mod.People(None, "largest")
    assert people.start(None, 0, BOXES) == 0  # by place, where the shot starts
    box = np.array([[12, 0, 52, 40]])
    assert people.continues(None, 10, box, 0, alone=True)
    assert not people.continues(None, 12, box, 0, alone=False)  # another face overlaps too
    people.missed(20)
    assert not people.continues(None, 30, box, 0, alone=True)  # lost at 20: not taken back
    assert people.continues(None, 15, box, 0, alone=True)  # between 10 and the loss: still it
    assert people.take_back(None, 31, BOXES) is None
    people.new_shot()
    assert people.start(None, 40, BOXES) == 0  # a real cut: chosen again by place


def test_marked_without_identity_follows_nobody():
    assert people_mod.People(None, "marked").start(None, 0, BOXES) is None
