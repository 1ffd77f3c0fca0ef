"""How fast the demo page answers a drawing: ``POST /api/predict`` latency on loopback,
with 1 and with 16 concurrent clients, and with 1 client while 0, 1 and 2 page runs train.

    python benchmarks/serve.py --data-dir data/mnist [--model m.npz] [--requests 400] [--repeats 3]

Starts ``python -m scratchlr serve MODEL --port 0 --quiet`` in a process of its own (without
``--model``, first trains the README's recipe into a temporary file). Each client is a thread
of this process with its own kept-alive connection, posting the PNGs the page posts: MNIST
test images drawn 10x larger, 280x280 like the pad, so each goes through the MNIST-like
preprocessing. Each round sends ``--requests`` requests, after 20 to warm up; the latency is
from sending a request to having read its whole answer. A training round first starts its
runs as the page does (``POST /api/runs``, the seed's settings for ``TRAIN_STEPS`` steps, as
fast as they go) and keeps each one's event stream open, as its page would; it reports the
steps per second the runs made while the drawings were answered. Rounds alternate their
order (ABBA). Prints Markdown tables of the medians over ``--repeats`` rounds of each round's
p50 and p99.
"""

from __future__ import annotations

import argparse
import http.client
import io
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
from bench import machine  # noqa: E402
from converge import RECIPE  # noqa: E402  (the README's)
from PIL import Image  # noqa: E402

from scratchlr.dataset import splits  # noqa: E402
from scratchlr.dataset.records import DATASETS  # noqa: E402

ENV = {**os.environ, "PYTHONPATH": str(ROOT)}
TRAIN_STEPS = 200_000  # a page run's most: long enough to outlast every round


def drawings(data_dir: str, count: int = 50) -> list[bytes]:
    """PNGs of the first ``count`` test images, each pixel drawn 10 x 10, as the pad sends them."""
    out = []
    for image in splits.load(DATASETS["mnist"], data_dir).test.images[:count]:
        png = io.BytesIO()
        drawn = np.kron(image.reshape(28, 28), np.ones((10, 10), np.uint8))
        Image.fromarray(drawn).save(png, "PNG")
        out.append(png.getvalue())
    return out


def client(address: tuple[str, int], bodies: list[bytes]) -> list[float]:
    """Post each body on one kept-alive connection; the seconds each took, answer read."""
    conn = http.client.HTTPConnection(*address, timeout=60)
    seconds = []
    for body in bodies:
        start = time.perf_counter()
        conn.request("POST", "/api/predict", body=body, headers={"Content-Type": "image/png"})
        response = conn.getresponse()
        answer = response.read()
        seconds.append(time.perf_counter() - start)
        if response.status != 200:
            raise SystemExit(f"serve bench: {response.status}: {json.loads(answer)['error']}")
    conn.close()
    return seconds


class PageRun:
    """A training run started as the page starts one, with its event stream read in a thread
    of its own (a run whose stream closes is ended by the server), keeping the last step."""

    def __init__(self, address: tuple[str, int]) -> None:
        self.address = address
        settings = {"num_steps": str(TRAIN_STEPS)}
        answer = post_json(address, "/api/runs", {"settings": settings, "speed": 0})
        self.id = answer["run"]
        self.step = 0
        self.stream = http.client.HTTPConnection(*address, timeout=60)
        self.stream.request("GET", f"/api/runs/{self.id}/events")
        self.events = self.stream.getresponse()
        self.reader = threading.Thread(target=self.read, daemon=True)
        self.reader.start()

    def read(self) -> None:
        """Keep the newest frame's step, until the stream ends."""
        try:
            for line in self.events:
                if line.startswith(b"data: "):
                    self.step = json.loads(line[6:])["step"]
        except (OSError, ValueError):
            pass

    def stop(self) -> None:
        """End the run and close its stream."""
        post_json(self.address, f"/api/runs/{self.id}", {"action": "stop"})
        self.stream.close()


def post_json(address: tuple[str, int], path: str, body: dict) -> dict:
    """POST ``body`` as JSON; the JSON answer (SystemExit with the server's error if refused)."""
    conn = http.client.HTTPConnection(*address, timeout=60)
    try:
        conn.request("POST", path, json.dumps(body), {"Content-Type": "application/json"})
        response = conn.getresponse()
        answer = json.loads(response.read())
    finally:
        conn.close()
    if response.status >= 400:
        raise SystemExit(f"serve bench: {path}: {response.status}: {answer['error']}")
    return answer


def training_round(
    address: tuple[str, int], pngs: list[bytes], runs: int, requests: int
) -> tuple[float, float, float]:
    """(p50, p99, steps/s of each run) of ``requests`` drawings from one client while
    ``runs`` page runs train."""
    started = [PageRun(address) for _ in range(runs)]
    try:
        time.sleep(0.5)  # under way
        steps = [r.step for r in started]
        start = time.perf_counter()
        p50, p99 = round_of(address, pngs, 1, requests)
        seconds = time.perf_counter() - start
        made = [r.step - s for r, s in zip(started, steps)]
    finally:
        for r in started:
            r.stop()
    rate = statistics.mean(made) / seconds if made else 0.0
    return p50, p99, rate


def round_of(
    address: tuple[str, int], pngs: list[bytes], clients: int, requests: int
) -> tuple[float, float]:
    """(p50, p99) in ms of ``requests`` requests spread over ``clients`` concurrent clients."""
    per = [
        [pngs[(k * clients + c) % len(pngs)] for k in range(requests // clients)]
        for c in range(clients)
    ]
    with ThreadPoolExecutor(clients) as pool:
        seconds = sorted(s for part in pool.map(lambda b: client(address, b), per) for s in part)
    p50 = seconds[len(seconds) // 2]
    p99 = seconds[min(len(seconds) - 1, int(0.99 * len(seconds)))]
    return 1e3 * p50, 1e3 * p99


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", default="data/mnist")
    p.add_argument("--model", help="a saved model (default: train the README's recipe first)")
    p.add_argument(
        "--requests", type=int, default=400, help="requests per round and concurrency (400)"
    )
    p.add_argument("--repeats", type=int, default=3, help="rounds (3)")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        model = args.model or str(Path(tmp) / "m.npz")
        if not args.model:
            command = [sys.executable, "-m", "scratchlr", "--data-dir", args.data_dir, "--quiet"]
            subprocess.run(
                [*command, *RECIPE, "--save", model],
                check=True,
                env=ENV,
                capture_output=True,
            )
        command = [sys.executable, "-m", "scratchlr", "serve", model, "--port", "0", "--quiet"]
        server = subprocess.Popen(
            [*command, "--data-dir", args.data_dir],
            stdout=subprocess.PIPE,
            text=True,
            env=ENV,
        )
        try:
            url = server.stdout.readline().split(" on ")[1].split()[0]
            host, port = url.split("//")[1].strip("/").rsplit(":", 1)
            address = (host, int(port))
            pngs = drawings(args.data_dir)
            client(address, pngs[:20])  # warm up
            results: dict[int, list[tuple[float, float]]] = {1: [], 16: []}
            training: dict[int, list[tuple[float, float, float]]] = {0: [], 1: [], 2: []}
            for r in range(args.repeats):
                order = (1, 16) if r % 2 == 0 else (16, 1)  # alternating
                for clients in order:
                    results[clients].append(round_of(address, pngs, clients, args.requests))
                runs_order = (0, 1, 2) if r % 2 == 0 else (2, 1, 0)
                for runs in runs_order:
                    training[runs].append(training_round(address, pngs, runs, args.requests))
        finally:
            server.send_signal(signal.SIGINT)
            server.wait(timeout=10)
    print(f"machine: {machine()}\n")
    print("| clients | p50 ms | p99 ms |\n|---:|---:|---:|")
    for clients, rounds in results.items():
        print(
            f"| {clients} | {statistics.median(r[0] for r in rounds):.1f} | "
            f"{statistics.median(r[1] for r in rounds):.1f} |"
        )
    print("\n| runs training | p50 ms | p99 ms | steps/s per run |\n|---:|---:|---:|---:|")
    for runs, rounds in training.items():
        rate = f"{statistics.median(r[2] for r in rounds):,.0f}" if runs else "-"
        print(
            f"| {runs} | {statistics.median(r[0] for r in rounds):.1f} | "
            f"{statistics.median(r[1] for r in rounds):.1f} | {rate} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
