"""A small HTTP detection service over one shared Detector (standard library only).

    python examples/http_service.py MODEL.onnx [--host 127.0.0.1] [--port 8080] [--max-bytes 10000000]
        [--max-pixels 40000000] [--workers 4] [--backlog 256] [--read-timeout 10]

    POST /detect   body: an encoded image (JPEG, PNG, ...) -> 200 {"detections": [...], ...}
    GET  /health   -> 200 {"status": "ok", "model": ...}

Every failure gets an HTTP answer with a JSON {"error": ...}: a body that is not an image, or one
that decodes to more than --max-pixels (OpenCV checks the size in the header, before allocating),
400; one over --max-bytes 413; a missing Content-Length 411; an unknown path 404; a client that
stalls longer than --read-timeout 408; anything else 500. Requests are served by a bounded pool of
--workers threads, and up to --backlog connections wait in the listen queue, so a burst is queued,
not reset. It binds to 127.0.0.1 unless told otherwise.
"""
import os
import sys

# OpenCV reads its decode limit once: it must be set before cv2 is imported (by edgedet too).
_MAX_PIXELS_DEFAULT = 40_000_000
if "--max-pixels" in sys.argv[:-1]:
    os.environ["OPENCV_IO_MAX_IMAGE_PIXELS"] = sys.argv[sys.argv.index("--max-pixels") + 1]
os.environ.setdefault("OPENCV_IO_MAX_IMAGE_PIXELS", str(_MAX_PIXELS_DEFAULT))

import argparse  # noqa: E402
import json  # noqa: E402
import socket  # noqa: E402
import time  # noqa: E402
from concurrent.futures import ThreadPoolExecutor  # noqa: E402
from http.server import BaseHTTPRequestHandler, HTTPServer  # noqa: E402

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from edgedet.runtime import Detector  # noqa: E402


class PooledHTTPServer(HTTPServer):
    """HTTPServer whose requests run on a fixed pool of threads (ThreadingHTTPServer starts one
    thread per connection, without bound) and whose listen backlog holds a burst."""

    def __init__(self, address, handler, workers: int, backlog: int) -> None:
        self.request_queue_size = backlog  # read by server_activate's listen()
        super().__init__(address, handler)
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="http")

    def process_request(self, request, client_address) -> None:
        self.pool.submit(self._serve, request, client_address)

    def _serve(self, request, client_address) -> None:
        try:
            self.finish_request(request, client_address)
        except Exception:  # noqa: BLE001 -- one broken connection never stops the service
            self.handle_error(request, client_address)
        finally:
            self.shutdown_request(request)

    def handle_error(self, request, client_address) -> None:
        print(f"error serving {client_address[0]}: {sys.exc_info()[1]!r}", file=sys.stderr, flush=True)

    def server_close(self) -> None:
        super().server_close()
        self.pool.shutdown(wait=False, cancel_futures=True)


def make_handler(detector: Detector, max_bytes: int, read_timeout: float):
    class Handler(BaseHTTPRequestHandler):
        server_version = "edgedet-example/1"
        timeout = read_timeout  # socket timeout for every read: a stalled client frees its thread

        def _reply(self, status: int, payload: dict) -> None:
            body = json.dumps(payload).encode("utf-8")
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, fmt, *args):  # keep the console quiet; errors are printed by the server
            pass

        def do_GET(self):
            if self.path == "/health":
                self._reply(200, {"status": "ok", "model": detector.metadata.model_name, "providers": detector.providers})
            else:
                self._reply(404, {"error": f"no such path {self.path}; use POST /detect or GET /health"})

        def do_POST(self):
            try:
                self._detect()
            except socket.timeout:
                self.close_connection = True
                self._reply(408, {"error": f"the body did not arrive within {read_timeout:g} s"})
            except (ConnectionError, BrokenPipeError):
                self.close_connection = True
            except Exception as e:  # noqa: BLE001 -- the client gets an answer, the service stays up
                self._reply(500, {"error": f"{type(e).__name__}: {e}"})

        def _detect(self):
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
            try:
                image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
            except cv2.error:  # OpenCV refuses, from the header, an image over OPENCV_IO_MAX_IMAGE_PIXELS
                image = None
            if image is None:
                limit = int(os.environ["OPENCV_IO_MAX_IMAGE_PIXELS"])
                self._reply(400, {"error": f"the body is not a decodable image, or decodes to more than {limit} pixels"})
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
    parser.add_argument("--max-pixels", type=int, default=_MAX_PIXELS_DEFAULT,
                        help="largest decoded image (width x height), checked from the header")
    parser.add_argument("--workers", type=int, default=4, help="threads serving requests")
    parser.add_argument("--backlog", type=int, default=256, help="connections waiting to be accepted")
    parser.add_argument("--read-timeout", type=float, default=10.0, help="seconds a client may stall a read")
    args = parser.parse_args()
    detector = Detector(args.model, warmup=True)
    server = PooledHTTPServer((args.host, args.port), make_handler(detector, args.max_bytes, args.read_timeout),
                              workers=args.workers, backlog=args.backlog)
    print(f"listening on http://{server.server_address[0]}:{server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
