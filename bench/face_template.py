"""Where dlib's five face landmarks fall in the FFHQ layout face restoration models were trained
on, measured on real faces; and how far the framing they give lands from the reference's (not
part of CI; needs the test requirements: dlib-bin and the photographs' packages).

    python bench/face_template.py

GFPGAN, RestoreFormer and CodeFormer were trained on faces aligned by five points (the eye
centres, the nose tip, the mouth corners: facexlib's template at 512 px). The pack finds five
other points (dlib's: the corners of each eye, the base of the nose). dlib's 68-point model
marks both sets on the same face, so each face's reference framing (its 68-point eye centres,
nose tip and mouth corners fitted onto the template) says where its five dlib points belong in
the layout; their mean over the people (each person weighted alike, mirrored so the template is
symmetric) is `restore.align.DLIB5_IN_FFHQ`. The framing error is how far the pack's framing
puts the reference points from where the reference's own framing puts them, in pixels of the
512 px face: with every person in the mean, and with each person left out of it in turn.
A framing from the face box alone (no landmarks) is measured beside it.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchmark import load_pack  # noqa: E402

import real_people as people  # noqa: E402  (on the path benchmark puts the tests on)

PEOPLE = ("astronaut", "hopper", "carphone")


def faces():
    """(person, photo name, RGB) for each face: the two portraits, and every 6th frame of the
    carphone sequence (talking, turning, pulling faces)."""
    yield "astronaut", "astronaut", people.photo("astronaut")
    yield "hopper", "hopper", people.photo("hopper")
    for k in range(0, 120, 6):
        yield "carphone", f"carphone{k}", people.photo(f"carphone{k}")


def apply(matrix, points):
    return points @ matrix[:, :2].T + matrix[:, 2]


def mirrored(template: np.ndarray, middle: float) -> np.ndarray:
    """The template made symmetric about x = middle: dlib's points come as (outer, inner) of the
    picture's right eye, then (outer, inner) of its left eye, then the nose."""
    out = template.copy()
    for a, b in ((0, 2), (1, 3)):
        half = (template[a, 0] - template[b, 0]) / 2
        y = (template[a, 1] + template[b, 1]) / 2
        out[a], out[b] = (middle + half, y), (middle - half, y)
    out[4, 0] = middle
    return out


def main():
    mod = load_pack()
    align = mod("restore.align")
    similarity = mod("common.geometry").similarity
    landmarks_mod = mod("face_detect.recognition.landmarks")
    ours = landmarks_mod.load_shape_predictor((people.weights_dir() / "shape_predictor_5_face_landmarks.dat").read_bytes())
    template = align.FFHQ_POINTS
    rows = []
    for person, name, rgb in faces():
        box = people.dlib_box(rgb)
        if box is None:
            print(f"{name}: no face found by dlib's detector; left out")
            continue
        points, ref = ours(landmarks_mod.dlib_grey(rgb), box), people.template_points(rgb, box)
        rows.append((person, name, points, ref, box, apply(similarity(ref, template), points)))

    def fitted(chosen):
        per_person = [np.mean([r[5] for r in chosen if r[0] == p], axis=0)
                      for p in PEOPLE if any(r[0] == p for r in chosen)]
        return mirrored(np.mean(per_person, axis=0), template[:2, 0].mean())

    def errors(dlib_template, chosen):
        return np.array([np.linalg.norm(apply(similarity(points, dlib_template), ref) -
                                        apply(similarity(ref, template), ref), axis=1)
                         for _, _, points, ref, _, _ in chosen])

    found = fitted(rows)
    print(f"{len(rows)} faces of {len(PEOPLE)} people")
    print("dlib's five points in the FFHQ layout (px of 512):")
    print("DLIB5_IN_FFHQ = np.array([" + ", ".join(f"({x:.1f}, {y:.1f})" for x, y in found) + "])")
    print(f"in the pack now: {np.round(align.DLIB5_IN_FFHQ, 1).tolist()}")
    e = errors(align.DLIB5_IN_FFHQ, rows)
    print(f"framing error, the pack's template: mean {e.mean():.1f} px, worst face {e.max():.1f} px "
          f"(eye centres, nose tip, mouth corners: {', '.join(f'{v:.1f}' for v in e.mean(axis=0))})")
    for person in PEOPLE:
        rest = [r for r in rows if r[0] != person]
        own = [r for r in rows if r[0] == person]
        e = errors(fitted(rest), own)
        print(f"  {person} left out of the template: mean {e.mean():.1f} px, worst {e.max():.1f} px")

    # the face box alone: its corners fitted onto where the reference puts them, on average
    def corners(box):
        x1, y1, x2, y2 = box
        return np.array([(x1, y1), (x2, y1), (x1, y2), (x2, y2)], np.float64)

    box_template = np.mean([apply(similarity(r[3], template), corners(r[4])) for r in rows], axis=0)
    e = np.array([np.linalg.norm(apply(similarity(corners(box), box_template), ref) -
                                 apply(similarity(ref, template), ref), axis=1)
                  for _, _, _, ref, box, _ in rows])
    print(f"framing error from the face box alone (dlib's detector's box): mean {e.mean():.1f} px, "
          f"worst {e.max():.1f} px")


if __name__ == "__main__":
    main()
