"""``scratchlr serve`` for real: a model trained on MNIST, its test images as files, and the
command in a process of its own (Ctrl-C, the access log, one-line errors)."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from serving import png  # Pillow's, or the module skips

ROOT = Path(__file__).resolve().parents[1]


def scratchlr(*args: str, **kwargs) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "scratchlr", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        **kwargs,
    )


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


def test_mnist_images_get_what_predict_gives(
    command, saved: Path, mnist_data, tmp_path: Path
) -> None:
    """20 MNIST test images as PNG files (half at 28x28, half drawn 10x larger, which go through
    the MNIST-like preprocessing): the API's prediction and probabilities are predict --json's."""
    _, url = command
    files = []
    for i in range(20):
        x = mnist_data.test.images[i].reshape(28, 28)
        files.append(tmp_path / f"{i}.png")
        files[-1].write_bytes(png(x if i < 10 else np.kron(x, np.ones((10, 10), np.uint8))))
    proc = subprocess.run(
        [sys.executable, "-m", "scratchlr", "predict", str(saved), *map(str, files), "--json"],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    host, port = url.split("//")[1].strip("/").split(":")
    for f, want in zip(files, json.loads(proc.stdout)):
        conn = http.client.HTTPConnection(host, int(port), timeout=10)
        conn.request(
            "POST", "/api/predict", body=f.read_bytes(), headers={"Content-Type": "image/png"}
        )
        got = json.loads(conn.getresponse().read())
        conn.close()
        assert got["prediction"] == want["prediction"], f
        assert np.abs(np.array(got["probabilities"]) - want["probabilities"]).max() <= 1e-6
        assert np.abs(np.array(got["logits"]) - want["logits"]).max() <= 1e-6
    right = sum(
        json.loads(proc.stdout)[i]["prediction"] == mnist_data.test.labels[i] for i in range(20)
    )
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


def test_a_bad_model_or_a_busy_port_is_one_line(
    saved: Path, mnist_dir: Path, tmp_path: Path
) -> None:
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"not a model")
    proc = scratchlr("serve", str(junk), "--port", "0", "--data-dir", str(mnist_dir))
    out, err = proc.communicate(timeout=60)
    assert (
        proc.returncode == 1
        and err.count("\n") == 1
        and "junk.npz" in err
        and "not a model file" in err
    )
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        proc = scratchlr(
            "serve", str(saved), "--port", str(busy.getsockname()[1]), "--data-dir", str(mnist_dir)
        )
        out, err = proc.communicate(timeout=60)
    assert (
        proc.returncode == 1
        and err.count("\n") == 1
        and "cannot listen on 127.0.0.1" in err
        and out == ""
    )
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


def settings_of(proc: subprocess.Popen) -> dict:
    """The /api/settings answer of the server the process printed the URL of."""
    line = proc.stdout.readline()
    assert "http://127.0.0.1:" in line, proc.stderr.read()
    host, port = line.split(" on ")[1].split()[0].split("//")[1].strip("/").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    conn.request("GET", "/api/settings")
    answer = json.loads(conn.getresponse().read())
    conn.close()
    return answer


def test_without_a_model_it_serves_the_training_view(saved: Path, mnist_dir: Path) -> None:
    proc = scratchlr("serve", "--port", "0", "--data-dir", str(mnist_dir), "--max-runs", "3")
    try:
        answer = settings_of(proc)
        assert (answer["model"], answer["max_runs"], answer["training"]) == (None, 3, True)
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=10)
    assert proc.returncode == 0
    proc = scratchlr(
        "serve", str(saved), "--port", "0", "--data-dir", str(mnist_dir), "--max-runs", "0"
    )
    try:
        answer = settings_of(proc)
        assert (answer["model"], answer["max_runs"], answer["training"]) == ("m.npz", 0, False)
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=10)
    proc = scratchlr("serve", "--max-runs", "-1")
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 2 and err.count("\n") == 1 and "a count is 0 or more" in err
    proc = scratchlr("serve", "--max-runs", "0")  # nothing to serve
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 2 and err.count("\n") == 1 and "trains nothing" in err
