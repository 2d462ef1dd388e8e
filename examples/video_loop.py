"""Detect on a video file or a camera and write an annotated copy.

    python examples/video_loop.py MODEL.onnx SOURCE [--out annotated.mp4] [--max-frames N] [--show]

SOURCE is a video file or a camera index (0). --show opens a window (needs a display and
the non-headless OpenCV build).
"""
import argparse
import time

import cv2

from edgedet.runtime import Detector


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model")
    parser.add_argument("source")
    parser.add_argument("--out", default="annotated.mp4")
    parser.add_argument("--max-frames", type=int, default=None)
    parser.add_argument("--show", action="store_true")
    args = parser.parse_args()

    detector = Detector(args.model, warmup=True)
    capture = cv2.VideoCapture(int(args.source) if args.source.isdigit() else args.source)
    if not capture.isOpened():
        raise SystemExit(f"{args.source}: cannot open video or camera")
    fps = capture.get(cv2.CAP_PROP_FPS) or 25.0
    writer, frames, start = None, 0, time.perf_counter()
    while args.max_frames is None or frames < args.max_frames:
        ok, frame = capture.read()
        if not ok:
            break
        annotated = detector(frame).draw(frame)
        frames += 1
        if writer is None:
            h, w = frame.shape[:2]
            writer = cv2.VideoWriter(args.out, cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
        writer.write(annotated)
        if args.show:
            cv2.imshow("edgedet", annotated)
            if cv2.waitKey(1) & 0xFF == ord("q"):
                break
    capture.release()
    if writer is not None:
        writer.release()
    elapsed = time.perf_counter() - start
    print(f"{frames} frames in {elapsed:.1f}s ({frames / max(elapsed, 1e-9):.1f} fps) -> {args.out}")


if __name__ == "__main__":
    main()
