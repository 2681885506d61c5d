"""Draws docs/face_choice.png: a frame with two faces and which one each `face` choice takes.
The labels come from the pack's own choice function, so the picture stays true to the code.

    python docs/face_choice.py
"""

import importlib
import importlib.util
import sys
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def pack_boxes_module():
    spec = importlib.util.spec_from_file_location("halo_lipsy_docs", ROOT / "__init__.py",
                                                  submodule_search_locations=[str(ROOT)])
    module = importlib.util.module_from_spec(spec)
    sys.modules["halo_lipsy_docs"] = module
    spec.loader.exec_module(module)
    return importlib.import_module("halo_lipsy_docs.face_detect.boxes")


def draw_face(image, box, skin):
    x1, y1, x2, y2 = box
    cx, cy, w, h = (x1 + x2) // 2, (y1 + y2) // 2, x2 - x1, y2 - y1
    cv2.ellipse(image, (cx, cy), (w // 2, h // 2), 0, 0, 360, skin, -1, cv2.LINE_AA)
    for dx in (-w // 5, w // 5):
        cv2.circle(image, (cx + dx, cy - h // 8), max(2, w // 16), (40, 40, 40), -1, cv2.LINE_AA)
    cv2.ellipse(image, (cx, cy + h // 4), (w // 6, h // 14), 0, 0, 180, (60, 40, 150), -1, cv2.LINE_AA)


def main():
    boxes_mod = pack_boxes_module()
    image = np.full((360, 640, 3), (235, 225, 215), np.uint8)
    faces = np.array([[90, 70, 250, 270], [420, 120, 520, 250]], float)
    draw_face(image, faces[0].astype(int), (150, 180, 225))
    draw_face(image, faces[1].astype(int), (120, 160, 210))
    mark = (470, 200)  # a rough stroke on the right face, as painted in the mask editor
    cv2.line(image, (455, 190), (485, 212), (255, 255, 255), 9, cv2.LINE_AA)
    labels = {0: [], 1: []}
    for choice in boxes_mod.FACE_CHOICES:
        picked = boxes_mod.pick_face(faces, choice, mark if choice == "marked" else None)
        labels[picked].append(choice + (" (the white stroke)" if choice == "marked" else ""))
    for k, box in enumerate(faces.astype(int)):
        cv2.rectangle(image, tuple(box[:2]), tuple(box[2:]), (0, 140, 0), 2, cv2.LINE_AA)
        for row, text in enumerate(labels[k]):
            cv2.putText(image, text, (int(box[0]), int(box[3]) + 22 + 20 * row),
                        cv2.FONT_HERSHEY_SIMPLEX, 0.55, (0, 90, 0), 1, cv2.LINE_AA)
    cv2.putText(image, "face = ...", (12, 24), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (60, 60, 60), 1,
                cv2.LINE_AA)
    cv2.imwrite(str(ROOT / "docs" / "face_choice.png"), image)


if __name__ == "__main__":
    main()
