"""Embed edgedet in an app: load a model once, detect on an image.

    python examples/embed.py MODEL.onnx IMAGE
"""
import sys

import cv2

from edgedet.runtime import Detector

detector = Detector(sys.argv[1])  # input size, classes and pre-processing come from the file
detections = detector(cv2.imread(sys.argv[2]))
for box, score, label in zip(detections.boxes, detections.scores, detections.labels):
    print(f"{label:>12s} {score:.2f} at {[round(float(v)) for v in box]}")
print(f"{len(detections)} detections on {detector.providers[0]}")
