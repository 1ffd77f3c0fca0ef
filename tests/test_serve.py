"""``scratchlr serve``: the API against ``scratchlr predict``, hostile clients, concurrency, the command."""

from __future__ import annotations

import http.client
import io
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from scratchlr import train
from scratchlr.backend import numpy_backend
from scratchlr.dataset.mnist import Split
from scratchlr.files import images, modelfile
from scratchlr.serve import api
from scratchlr.serve.server import MAX_BODY, DemoServer

Image = pytest.importorskip("PIL.Image", reason="Pillow (the [serve] extra) is not installed")
ROOT = Path(__file__).resolve().parents[1]


def png(pixels: np.ndarray, kind: str = "PNG") -> bytes:
    """The bytes of a grayscale uint8 image file."""
    out = io.BytesIO()
    Image.fromarray(np.asarray(pixels, np.uint8)).save(out, kind)
    return out.getvalue()


def digit_like(seed: int, side: int = 28) -> np.ndarray:
    """A random bright blob on black, ``side`` pixels square: an image that is not blank."""
    rng = np.random.default_rng(seed)
    x = np.zeros((side, side), np.uint8)
    lo, hi = side // 4, 3 * side // 4
    x[lo:hi, lo:hi] = rng.integers(0, 256, (hi - lo, hi - lo))
    return x


@pytest.fixture(scope="module")
def synthetic() -> DemoServer:
    """A server of a random model and five random test images, on an ephemeral port, with a
    1 s connection timeout: no MNIST needed."""
    rng = np.random.default_rng(0)
    W, b = rng.normal(0, 0.05, (784, 10)).astype(np.float32), rng.normal(0, 0.1, 10).astype(np.float32)
    test = Split(rng.integers(0, 256, (5, 784)).astype(np.uint8), np.arange(5))
    server = DemoServer(("127.0.0.1", 0), W, b, test, quiet=True, timeout_s=1.0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


def request(server: DemoServer, method: str, path: str, body: bytes | None = None,
            headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    """(status, headers, body) of one request on a fresh connection."""
    conn = http.client.HTTPConnection(*server.server_address[:2], timeout=10)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        r = conn.getresponse()
        return r.status, dict(r.getheaders()), r.read()
    finally:
        conn.close()


def raw(server: DemoServer, data: bytes, wait_s: float = 10) -> bytes:
    """What the server answers to ``data`` sent as it is on a socket, until it closes."""
    with socket.create_connection(server.server_address[:2], timeout=wait_s) as s:
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
        chunks = []
        while chunk := s.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def test_a_drawing_gets_the_explanation_of_its_pixels(synthetic: DemoServer) -> None:
    drawing = png(digit_like(1, 280))
    status, headers, body = request(synthetic, "POST", "/api/predict", drawing, {"Content-Type": "image/png"})
    assert status == 200 and headers["Content-Type"] == "application/json"
    out = json.loads(body)
    p, z = np.array(out["probabilities"]), np.array(out["logits"])
    assert p.shape == z.shape == (10,) and abs(p.sum() - 1) < 1e-5 and out["prediction"] == int(p.argmax())
    x = np.array(out["input"], np.float32).reshape(-1)
    assert np.array(out["input"]).shape == (28, 28) and np.array_equal(x, images.from_bytes(drawing))
    first, second = out["contributions"]
    assert [first["class"], second["class"]] == list(np.argsort(-p, kind="stable")[:2])
    for part in (first, second):  # pixels + b = logit, and the map is x * W[:, c]
        c = part["class"]
        assert np.allclose(np.array(part["map"]).reshape(-1), x * synthetic.W[:, c], atol=1e-7)
        assert part["pixels"] + part["bias"] == pytest.approx(part["logit"], abs=1e-4)
        assert part["logit"] == pytest.approx(z[c]) and part["bias"] == pytest.approx(float(synthetic.b[c]))
    assert out["scale"] == pytest.approx(max(np.abs(np.array(q["map"])).max() for q in (first, second)))


def test_templates_and_test_images(synthetic: DemoServer) -> None:
    status, _, body = request(synthetic, "GET", "/api/templates")
    out = json.loads(body)
    assert status == 200 and out["test_images"] == 5 and len(out["palette"]) == 11
    assert np.array_equal(np.array(out["templates"]).reshape(10, 784).T, synthetic.W)
    assert out["scale"] == pytest.approx(float(np.abs(synthetic.W).max()))
    status, _, body = request(synthetic, "GET", "/api/test/3")
    out = json.loads(body)
    assert status == 200 and out["index"] == 3 and out["label"] == 3
    assert np.allclose(np.array(out["input"]).reshape(-1), synthetic.test.images[3] / 255.0, atol=1e-7)
    status, _, body = request(synthetic, "GET", "/api/test/5")
    assert status == 404 and "no test image 5" in json.loads(body)["error"]


def test_the_palette_is_matplotlibs_map_of_the_plots() -> None:
    colormaps = pytest.importorskip("matplotlib").colormaps
    from scratchlr.reports.plots import DIVERGING

    for k, colour in enumerate(api.PALETTE):
        rgb = np.array([int(colour[i : i + 2], 16) for i in (1, 3, 5)]) / 255
        assert np.abs(rgb - np.array(colormaps[DIVERGING](k / 10)[:3])).max() < 0.02, (k, colour)


def test_the_page_and_its_headers(synthetic: DemoServer) -> None:
    status, headers, body = request(synthetic, "GET", "/")
    assert status == 200 and headers["Content-Type"].startswith("text/html") and b'<canvas id="pad"' in body
    policy = headers["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "default-src 'none'" in policy and "unsafe" not in policy
    for path, kind in (("/page.js", "text/javascript"), ("/page.css", "text/css")):
        status, headers, body = request(synthetic, "GET", path)
        assert status == 200 and headers["Content-Type"].startswith(kind) and body
    status, headers, body = request(synthetic, "HEAD", "/api/templates")
    assert status == 200 and body == b"" and int(headers["Content-Length"]) > 1000
    assert b"<script>" not in request(synthetic, "GET", "/")[2]  # every script is a file the policy allows


BAD_IMAGES = {
    "empty": (b"", "empty"),
    "not an image": (b"hello, this is text, not a picture" * 10, "not a PNG or JPEG"),
    "truncated": (png(digit_like(2, 280))[:300], "not an image"),
    "blank": (png(np.zeros((280, 280))), "blank"),
    "white paper": (png(np.full((280, 280), 255)), "blank"),
    "a GIF": (png(digit_like(3, 280), "GIF"), "not a PNG or JPEG"),
    "too many pixels": (png(np.zeros((5001, 5001))), "too large"),
}


@pytest.mark.parametrize("name", BAD_IMAGES)
def test_bad_images_get_400_naming_the_problem(synthetic: DemoServer, name: str) -> None:
    data, words = BAD_IMAGES[name]
    status, headers, body = request(synthetic, "POST", "/api/predict", data)
    assert status == 400 and headers["Content-Type"] == "application/json"
    assert words in json.loads(body)["error"]


@pytest.mark.parametrize("method, path, status", [
    ("GET", "/api/predict", 405), ("POST", "/", 405), ("PUT", "/api/templates", 405), ("DELETE", "/", 405),
    ("BREW", "/api/predict", 405), ("OPTIONS", "/page.js", 405), ("GET", "/nothing", 404), ("DELETE", "/x", 404),
    ("GET", "/../setup.cfg", 404), ("GET", "/%2e%2e/%2e%2e/etc/passwd", 404), ("GET", "/page.js/../../setup.cfg", 404),
    ("GET", "//etc/passwd", 404), ("GET", "/scratchlr/serve/page/page.js", 404), ("GET", "/index.html", 404),
    ("GET", "/api/test/-1", 404), ("GET", "/api/test/1e3", 404), ("GET", "/api/test/999999999", 404),
    ("GET", "/api/test/%30", 404), ("GET", "/page.js%00.html", 404), ("GET", "/api/../page.js", 404),
])
def test_wrong_methods_and_path_tricks(synthetic: DemoServer, method: str, path: str, status: int) -> None:
    got, headers, body = request(synthetic, method, path)
    assert got == status, body
    assert headers["Content-Type"] == "application/json" and headers["X-Content-Type-Options"] == "nosniff"
    assert "error" in json.loads(body)
    if status == 405:
        assert method not in headers["Allow"] and headers["Allow"] in ("GET, HEAD", "POST")


def test_bodies_too_large_unsized_or_truncated(synthetic: DemoServer) -> None:
    big = raw(synthetic, f"POST /api/predict HTTP/1.1\r\nHost: x\r\nContent-Length: {MAX_BODY + 1}\r\n\r\n".encode())
    assert big.startswith(b"HTTP/1.1 413") and b"at most" in big
    post = b"POST /api/predict HTTP/1.1\r\nHost: x\r\n"
    unsized = raw(synthetic, post + b"\r\n")
    assert unsized.startswith(b"HTTP/1.1 411")
    chunked = raw(synthetic, post + b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n")
    assert chunked.startswith(b"HTTP/1.1 411")
    for length in ("-5", "abc", "1e3", "\u00b2"):
        bad = raw(synthetic, post + f"Content-Length: {length}\r\n\r\n".encode("latin-1"))
        assert bad.startswith(b"HTTP/1.1 400") and b"Content-Length" in bad
    cut = raw(synthetic, post + b"Content-Length: 1000\r\n\r\n" + png(digit_like(4))[:50])
    assert cut.startswith(b"HTTP/1.1 400") and b"truncated body" in cut
    garbage = raw(synthetic, b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + os.urandom(200) + b"\r\n\r\n")
    assert garbage.startswith(b"HTTP/1.") and b" 400 " in garbage.split(b"\r\n")[0]
    with socket.create_connection(synthetic.server_address[:2]) as s:  # a client that resets mid-body
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        s.sendall(post + b"Content-Length: 1000\r\n\r\n" + b"\x89PNG")
    assert request(synthetic, "GET", "/api/test/0")[0] == 200  # and it keeps answering


def test_a_stalled_client_holds_only_its_own_connection(synthetic: DemoServer) -> None:
    """Half a request, then silence: the others are served meanwhile, and the server ends the
    stalled connection after its timeout (1 s here)."""
    stalled = [socket.create_connection(synthetic.server_address[:2], timeout=10) for _ in range(3)]
    stalled[0].sendall(b"POST /api/predict HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n" + b"\x89PNG")
    stalled[1].sendall(b"GET /api/templ")  # mid request line
    stalled[2].sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")  # mid headers
    start = time.monotonic()
    for i in range(5):
        assert request(synthetic, "GET", f"/api/test/{i}")[0] == 200
    assert time.monotonic() - start < 1.0  # served while the three wait
    answers = []
    for s in stalled:
        chunks = []
        while chunk := s.recv(65536):  # the server closes it
            chunks.append(chunk)
        answers.append(b"".join(chunks))
        s.close()
    assert time.monotonic() - start < 5
    assert answers[0].startswith(b"HTTP/1.1 408")


def test_200_requests_from_16_threads_are_all_answered_right(synthetic: DemoServer) -> None:
    drawings = [np.random.default_rng(seed).integers(0, 256, (28, 28)) for seed in range(20)]
    bodies = [png(d) for d in drawings]
    expected = [api.explanation(synthetic.W, synthetic.b, images.from_bytes(body))["prediction"] for body in bodies]
    assert len(set(expected)) > 1  # the drawings do not all get one class

    def one(k: int) -> tuple[int, int]:
        status, _, body = request(synthetic, "POST", "/api/predict", bodies[k % 20])
        return status, json.loads(body)["prediction"]

    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(one, range(200)))
    assert answers == [(200, expected[k % 20]) for k in range(200)]


def test_keep_alive_serves_several_requests_on_one_connection(synthetic: DemoServer) -> None:
    conn = http.client.HTTPConnection(*synthetic.server_address[:2], timeout=10)
    try:
        for path in ("/", "/api/templates", "/api/test/1"):
            conn.request("GET", path)
            r = conn.getresponse()
            assert r.status == 200 and r.read()
        conn.request("POST", "/api/predict", body=b"nonsense")
        r = conn.getresponse()
        assert r.status == 400 and r.read()
        conn.request("GET", "/api/test/2")  # a bad image does not end the connection
        assert conn.getresponse().status == 200
    finally:
        conn.close()


# The real thing: a model trained on MNIST, its test images as files, and the command itself.

@pytest.fixture(scope="module")
def saved(mnist_data, tmp_path_factory: pytest.TempPathFactory) -> Path:
    config = train.Config(num_steps=500)
    result = train.train(mnist_data, config, numpy_backend(), emit=lambda line: None)
    path = tmp_path_factory.mktemp("served") / "m.npz"
    modelfile.save(path, modelfile.ModelFile(result.W, result.b, config))
    return path


def scratchlr(*args: str, **kwargs) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "scratchlr", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)}, **kwargs)


@pytest.fixture()
def command(saved: Path, mnist_dir: Path):
    """``scratchlr serve`` in a process of its own on a free port: (process, its URL)."""
    proc = scratchlr("serve", str(saved), "--port", "0", "--data-dir", str(mnist_dir))
    line = proc.stdout.readline()
    assert "http://127.0.0.1:" in line, proc.stderr.read()
    yield proc, line.split(" on ")[1].split()[0]
    if proc.poll() is None:
        proc.kill()
    proc.communicate()


def test_mnist_images_get_what_predict_gives(command, saved: Path, mnist_data, tmp_path: Path) -> None:
    """20 MNIST test images as PNG files (half at 28x28, half drawn 10x larger, which go through
    the MNIST-like preprocessing): the API's prediction and probabilities are predict --json's."""
    _, url = command
    files = []
    for i in range(20):
        x = mnist_data.test.images[i].reshape(28, 28)
        files.append(tmp_path / f"{i}.png")
        files[-1].write_bytes(png(x if i < 10 else np.kron(x, np.ones((10, 10), np.uint8))))
    proc = subprocess.run([sys.executable, "-m", "scratchlr", "predict", str(saved), *map(str, files), "--json"],
                          capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=300)
    assert proc.returncode == 0, proc.stderr
    host, port = url.split("//")[1].strip("/").split(":")
    for f, want in zip(files, json.loads(proc.stdout)):
        conn = http.client.HTTPConnection(host, int(port), timeout=10)
        conn.request("POST", "/api/predict", body=f.read_bytes(), headers={"Content-Type": "image/png"})
        got = json.loads(conn.getresponse().read())
        conn.close()
        assert got["prediction"] == want["prediction"], f
        assert np.abs(np.array(got["probabilities"]) - want["probabilities"]).max() <= 1e-6
        assert np.abs(np.array(got["logits"]) - want["logits"]).max() <= 1e-6
    right = sum(json.loads(proc.stdout)[i]["prediction"] == mnist_data.test.labels[i] for i in range(20))
    assert right >= 16  # the model is a real one


def test_sigint_stops_the_server_cleanly(command) -> None:
    proc, url = command
    host, port = url.split("//")[1].strip("/").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    conn.request("GET", "/api/templates")
    assert conn.getresponse().status == 200
    idle = socket.create_connection((host, int(port)))  # a client holding a connection open
    idle.sendall(b"GET / HTTP/1.1\r\n")
    start = time.monotonic()
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=5)
    assert time.monotonic() - start < 5 and proc.returncode == 0, err
    assert "stopped" in err and "Traceback" not in err
    assert '"GET /api/templates HTTP/1.1" 200' in err  # the access log
    idle.close()


def test_a_bad_model_or_a_busy_port_is_one_line(saved: Path, mnist_dir: Path, tmp_path: Path) -> None:
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"not a model")
    proc = scratchlr("serve", str(junk), "--port", "0", "--data-dir", str(mnist_dir))
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 1 and err.count("\n") == 1 and "junk.npz" in err and "not a model file" in err
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        proc = scratchlr("serve", str(saved), "--port", str(busy.getsockname()[1]), "--data-dir", str(mnist_dir))
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 1 and err.count("\n") == 1 and "cannot listen on 127.0.0.1" in err and out == ""
    proc = scratchlr("serve", str(saved), "--port", "http")
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 2 and err.count("\n") == 1 and "a port is a number" in err


def test_quiet_keeps_the_access_log_off(saved: Path, mnist_dir: Path) -> None:
    proc = scratchlr("serve", str(saved), "--port", "0", "--data-dir", str(mnist_dir), "--quiet")
    url = proc.stdout.readline().split(" on ")[1].split()[0]
    host, port = url.split("//")[1].strip("/").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    conn.request("GET", "/nothing")
    assert conn.getresponse().status == 404
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=5)
    assert proc.returncode == 0 and "GET" not in err
