"""Draws docs/face_choice.png: which face each `face` choice follows in a shot, after a cut, and
when the followed face is lost. The labels come from the pack's own choice functions (position
for largest / left-most / right-most; for marked, the person A, whom the face recognition network
tells on real faces), so the picture stays
true to the code.

    python docs/face_choice.py
"""

import importlib
import importlib.util
import sys
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
PANEL = (300, 420)  # height, width
PEOPLE = {"A": {"skin": (150, 185, 230), "hair": (20, 25, 30), "clothes": (40, 30, 200)},  # BGR
          "B": {"skin": (55, 85, 130), "hair": (160, 158, 155), "clothes": (60, 140, 35)}}


def pack(name):
    if "halo_lipsy_docs" not in sys.modules:
        spec = importlib.util.spec_from_file_location("halo_lipsy_docs", ROOT / "__init__.py",
                                                      submodule_search_locations=[str(ROOT)])
        module = importlib.util.module_from_spec(spec)
        sys.modules["halo_lipsy_docs"] = module
        spec.loader.exec_module(module)
    return importlib.import_module(f"halo_lipsy_docs.{name}")


def draw_person(image, box, who, turned=False):
    x1, y1, x2, y2 = box
    cx, cy, w, h = (x1 + x2) // 2, (y1 + y2) // 2, x2 - x1, y2 - y1
    colours = PEOPLE[who]
    cv2.rectangle(image, (x1 - w // 3, y2 + h // 8), (x2 + w // 3, PANEL[0]), colours["clothes"], -1)
    cv2.ellipse(image, (cx, cy), (w // 2 + 6, h // 2 + 6), 0, 0, 360, colours["hair"], -1, cv2.LINE_AA)
    if turned:  # the back of the head: no face to see
        return
    cv2.ellipse(image, (cx, cy + 6), (w // 2, h // 2), 0, 0, 360, colours["skin"], -1, cv2.LINE_AA)
    for dx in (-w // 5, w // 5):
        cv2.circle(image, (cx + dx, cy - h // 10), max(2, w // 14), (40, 40, 40), -1, cv2.LINE_AA)
    cv2.ellipse(image, (cx, cy + h // 4), (w // 6, h // 14), 0, 0, 360, (60, 40, 150), -1, cv2.LINE_AA)


def panel(title, people):
    image = np.full(PANEL + (3,), (215, 200, 185), np.uint8)
    for who, box, turned in people:
        draw_person(image, box, who, turned)
    cv2.putText(image, title, (10, 22), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (40, 40, 40), 1, cv2.LINE_AA)
    return image


def label(image, box, lines):
    for row, text in enumerate(lines):
        cv2.putText(image, text, (max(4, int(box[0]) - 30), int(box[1]) - 40 - 18 * (len(lines) - 1 - row)),
                    cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 90, 0), 1, cv2.LINE_AA)
    cv2.rectangle(image, tuple(int(v) for v in box[:2]), tuple(int(v) for v in box[2:]), (0, 140, 0), 2)


def main():
    boxes_mod = pack("face_detect.boxes")
    a1, b1 = (70, 110, 160, 215), (270, 130, 340, 215)
    a2, b2 = (250, 100, 345, 210), (60, 110, 150, 215)
    shots = [panel("shot 1 (a stroke marks A)", [("A", a1, False), ("B", b1, False)]),
             panel("shot 2, after a cut", [("B", b2, False), ("A", a2, False)]),
             panel("shot 2, A turns away", [("B", b2, False), ("A", a2, True)])]
    stroke = (a1[0] + 30, (a1[1] + a1[3]) // 2)
    cv2.line(shots[0], stroke, (stroke[0] + 30, stroke[1] + 15), (255, 255, 255), 7, cv2.LINE_AA)

    for image, faces, marked in ((shots[0], np.array([a1, b1], float), 0),
                                 (shots[1], np.array([b2, a2], float), 1)):
        labels = {0: [], 1: []}
        for choice in ("largest", "left-most", "right-most"):
            labels[boxes_mod.pick_face(faces, choice)].append(choice)
        labels[marked].append("marked")
        for k, box in enumerate(faces):
            if labels[k]:
                label(image, box, labels[k])
    cv2.putText(shots[2], "A is lost: nobody else gets A's voice;", (10, 44), cv2.FONT_HERSHEY_SIMPLEX,
                0.48, (0, 0, 160), 1, cv2.LINE_AA)
    cv2.putText(shots[2], "these frames keep their real mouth", (10, 62), cv2.FONT_HERSHEY_SIMPLEX,
                0.48, (0, 0, 160), 1, cv2.LINE_AA)
    gap = np.full((PANEL[0], 8, 3), 255, np.uint8)
    cv2.imwrite(str(ROOT / "docs" / "face_choice.png"), np.hstack([shots[0], gap, shots[1], gap, shots[2]]))


if __name__ == "__main__":
    main()
