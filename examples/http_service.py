"""A small threaded HTTP detection service over one shared Detector (standard library only).

    python examples/http_service.py MODEL.onnx [--host 127.0.0.1] [--port 8080] [--max-bytes 10000000]

    POST /detect   body: an encoded image (JPEG, PNG, ...) -> 200 {"detections": [...], ...}
    GET  /health   -> 200 {"status": "ok", "model": ...}

A body that is not an image gets 400, one over --max-bytes 413, an unknown path 404, all
with a JSON {"error": ...}; the service stays up. It binds to 127.0.0.1 unless told otherwise.
"""
import argparse
import json
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import cv2
import numpy as np

from edgedet.runtime import Detector


def make_handler(detector: Detector, max_bytes: int):
    class Handler(BaseHTTPRequestHandler):
        server_version = "edgedet-example/1"

        def _reply(self, status: int, payload: dict) -> None:
            body = json.dumps(payload).encode("utf-8")
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, fmt, *args):  # keep the console quiet; one line per error only
            pass

        def do_GET(self):
            if self.path == "/health":
                self._reply(200, {"status": "ok", "model": detector.metadata.model_name, "providers": detector.providers})
            else:
                self._reply(404, {"error": f"no such path {self.path}; use POST /detect or GET /health"})

        def do_POST(self):
            if self.path != "/detect":
                self._reply(404, {"error": f"no such path {self.path}; use POST /detect"})
                return
            try:
                length = int(self.headers.get("Content-Length", ""))
            except ValueError:
                self._reply(411, {"error": "a Content-Length header is required"})
                return
            if length > max_bytes:
                self.close_connection = True  # do not read an oversized body
                self._reply(413, {"error": f"body of {length} bytes is over the limit of {max_bytes}"})
                return
            if length <= 0:
                self._reply(400, {"error": "empty body: send an encoded image"})
                return
            data = self.rfile.read(length)
            image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
            if image is None:
                self._reply(400, {"error": "the body is not a decodable image"})
                return
            start = time.perf_counter()
            detections = detector(image)
            self._reply(200, {"detections": detections.to_dicts(), "height": image.shape[0], "width": image.shape[1],
                              "ms": round((time.perf_counter() - start) * 1000, 2)})

    return Handler


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080, help="0 picks a free port")
    parser.add_argument("--max-bytes", type=int, default=10_000_000)
    args = parser.parse_args()
    detector = Detector(args.model, warmup=True)
    server = ThreadingHTTPServer((args.host, args.port), make_handler(detector, args.max_bytes))
    server.daemon_threads = True
    print(f"listening on http://{server.server_address[0]}:{server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
