"""Each example, run for real on a short input."""

import http.client
import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]


def _python(*args, **kwargs):
    return subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=120, **kwargs)


def test_embed(exported, sample_images, tmp_path):
    image = tmp_path / "a.jpg"
    cv2.imwrite(str(image), sample_images[3])
    result = _python("examples/embed.py", str(exported["decoded"]), str(image))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1].endswith("detections on CPUExecutionProvider")


def test_video_loop(exported, sample_images, tmp_path):
    video = tmp_path / "in.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 10, (160, 128))
    for _ in range(5):
        writer.write(cv2.resize(sample_images[0], (160, 128)))
    writer.release()
    out = tmp_path / "out.mp4"
    result = _python("examples/video_loop.py", str(exported["decoded"]), str(video), "--out", str(out), "--max-frames", "3")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("3 frames") and out.stat().st_size > 0
    assert cv2.VideoCapture(str(out)).get(cv2.CAP_PROP_FRAME_COUNT) == 3


@pytest.fixture
def service(exported):
    proc = subprocess.Popen([sys.executable, "examples/http_service.py", str(exported["decoded"]), "--port", "0",
                             "--max-bytes", "200000", "--read-timeout", "2"], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert line.startswith("listening on http://127.0.0.1:"), proc.stderr.read()
        yield int(line.rsplit(":", 1)[1])
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _request(port, method, path, body=None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request(method, path, body=body, headers={"Content-Type": "application/octet-stream"} if body is not None else {})
        response = conn.getresponse()
        return response.status, json.loads(response.read())
    finally:
        conn.close()


def test_http_service_good_and_bad_requests(service, sample_images):
    good = cv2.imencode(".jpg", sample_images[3])[1].tobytes()
    status, payload = _request(service, "POST", "/detect", good)
    assert status == 200 and len(payload["detections"]) > 0 and payload["width"] == sample_images[3].shape[1]
    assert _request(service, "POST", "/detect", b"not an image")[0] == 400
    assert _request(service, "POST", "/detect", b"")[0] == 400
    status, payload = _request(service, "POST", "/detect", b"x" * 300_000)
    assert status == 413 and "over the limit" in payload["error"]
    assert _request(service, "GET", "/nope")[0] == 404
    # still up after the bad requests, and answers the same
    assert _request(service, "GET", "/health") == (200, {"status": "ok", "model": "yolox-nano", "providers": ["CPUExecutionProvider"]})
    assert payload_of(service, good) == payload_of(service, good)


def payload_of(port, body):
    return _request(port, "POST", "/detect", body)[1]["detections"]


def test_http_service_answers_a_burst_and_refuses_huge_or_stalled_requests(service, sample_images):
    import socket
    from concurrent.futures import ThreadPoolExecutor

    good = cv2.imencode(".jpg", sample_images[0])[1].tobytes()
    with ThreadPoolExecutor(max_workers=50) as pool:  # 50 concurrent connections, loopback only
        statuses = list(pool.map(lambda _: _request(service, "POST", "/detect", good)[0], range(50)))
    assert statuses == [200] * 50

    # 10000 x 10000 decodes to 300 MB; its PNG is about 100 KB, with the size in its header.
    huge = cv2.imencode(".png", np.zeros((10000, 10000), np.uint8), [cv2.IMWRITE_PNG_COMPRESSION, 9])[1].tobytes()
    assert len(huge) < 200_000
    status, payload = _request(service, "POST", "/detect", huge)
    assert status == 400 and "more than 40000000 pixels" in payload["error"]

    # A client that announces a body and stalls gets 408 after the read timeout (2 s in the fixture).
    with socket.create_connection(("127.0.0.1", service), timeout=30) as raw:
        raw.sendall(b"POST /detect HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\npartial")
        answer = raw.recv(4096).decode()
    assert answer.startswith("HTTP/1.0 408") or answer.startswith("HTTP/1.1 408")
    assert _request(service, "GET", "/health")[0] == 200
