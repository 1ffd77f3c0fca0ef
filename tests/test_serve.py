"""``scratchlr serve``'s API: what a drawing, the templates and the test images get, the page
and its headers, kept-alive connections, and 200 requests from 16 threads."""

from __future__ import annotations

import http.client
import json
import re
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from serving import digit_like, png, request

from scratchlr.files import images
from scratchlr.serve import api
from scratchlr.serve.server import DemoServer


def test_a_drawing_gets_the_explanation_of_its_pixels(synthetic: DemoServer) -> None:
    drawing = png(digit_like(1, 280))
    status, headers, body = request(
        synthetic, "POST", "/api/predict", drawing, {"Content-Type": "image/png"}
    )
    assert status == 200 and headers["Content-Type"] == "application/json"
    out = json.loads(body)
    p = np.array(out["probabilities"])
    z = np.array(out["logits"])
    assert (
        p.shape == z.shape == (10,)
        and abs(p.sum() - 1) < 1e-5
        and out["prediction"] == int(p.argmax())
    )
    x = np.array(out["input"], np.float32).reshape(-1)
    assert np.array(out["input"]).shape == (28, 28) and np.array_equal(
        x, images.from_bytes(drawing)
    )
    first, second = out["contributions"]
    assert [first["class"], second["class"]] == list(
        np.argsort(-z, kind="stable")[:2]
    )  # as plots.explain
    for part in (first, second):  # pixels + b = logit, and the map is x * W[:, c]
        c = part["class"]
        assert np.allclose(np.array(part["map"]).reshape(-1), x * synthetic.W[:, c], atol=1e-7)
        assert part["pixels"] + part["bias"] == pytest.approx(part["logit"], abs=1e-4)
        assert part["logit"] == pytest.approx(z[c]) and part["bias"] == pytest.approx(
            float(synthetic.b[c])
        )
    assert out["scale"] == pytest.approx(
        max(np.abs(np.array(q["map"])).max() for q in (first, second))
    )


def test_the_two_highest_logits_break_a_tie_to_the_lower_class() -> None:
    """The maps the page and plots.explain both show (scratchlr.reports.contributions)."""
    from scratchlr.reports import contributions

    W = np.arange(8.0).reshape(2, 4)
    x = np.array([1.0, 0.5])
    top = contributions.top_two(W, x, np.array([2.0, 5.0, 1.0, 5.0]))
    assert [c for c, _ in top] == [1, 3]
    assert np.array_equal(top[0][1], [1.0, 2.5]) and np.array_equal(top[1][1], [3.0, 3.5])
    assert contributions.largest(np.array([-3.0, 2.0]), np.array([1.0])) == 3.0
    assert contributions.largest(np.zeros(3)) == 1.0  # an all-zero map still has a scale


def test_templates_and_test_images(synthetic: DemoServer) -> None:
    status, _, body = request(synthetic, "GET", "/api/templates")
    out = json.loads(body)
    assert status == 200 and out["test_images"] == 5 and len(out["palette"]) == 11
    assert np.array_equal(np.array(out["templates"]).reshape(10, 784).T, synthetic.W)
    assert out["scale"] == pytest.approx(float(np.abs(synthetic.W).max()))
    status, _, body = request(synthetic, "GET", "/api/test/3")
    out = json.loads(body)
    assert status == 200 and out["index"] == 3 and out["label"] == 3
    assert np.allclose(
        np.array(out["input"]).reshape(-1), synthetic.test.images[3] / 255.0, atol=1e-7
    )
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
    assert (
        status == 200
        and headers["Content-Type"].startswith("text/html")
        and b'<canvas id="pad"' in body
    )
    policy = headers["Content-Security-Policy"]
    assert (
        "script-src 'self'" in policy and "default-src 'none'" in policy and "unsafe" not in policy
    )
    files = {
        "/page.js": "text/javascript",
        "/train.js": "text/javascript",
        "/page.css": "text/css",
        "/train.css": "text/css",
    }
    for path, kind in files.items():
        status, headers, body = request(synthetic, "GET", path)
        assert status == 200 and headers["Content-Type"].startswith(kind) and body
    status, headers, body = request(synthetic, "HEAD", "/api/templates")
    assert status == 200 and body == b"" and int(headers["Content-Length"]) > 1000
    page = request(synthetic, "GET", "/")[2]
    scripts = re.findall(rb'<script src="(/[a-z]+\.js)" defer></script>', page)
    assert scripts == [b"/page.js", b"/train.js"]  # every script a file the policy allows
    assert page.count(b"<script") == 2 and b" style=" not in page  # nothing inline


def test_200_requests_from_16_threads_are_all_answered_right(synthetic: DemoServer) -> None:
    drawings = [np.random.default_rng(seed).integers(0, 256, (28, 28)) for seed in range(20)]
    bodies = [png(d) for d in drawings]
    expected = [
        api.explanation(synthetic.W, synthetic.b, images.from_bytes(body))["prediction"]
        for body in bodies
    ]
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
