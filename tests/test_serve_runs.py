"""The demo page's runs: ``train(watch=...)``, the runs' registry, and its HTTP API on a real
server with real MNIST."""

from __future__ import annotations

import base64
import contextlib
import http.client
import json
import socket
import threading
import time
from typing import Any, Callable

import numpy as np
import pytest
from serving import png, request  # Pillow's, or the module skips

from scratchlr import model, train
from scratchlr.backend import numpy_backend
from scratchlr.config import from_text
from scratchlr.files import modelfile
from scratchlr.serve import api, protocol, settings
from scratchlr.serve.runs import Runs
from scratchlr.serve.server import DemoServer


def test_a_watch_that_says_true_at_step_k_ends_the_run_there(mnist_data) -> None:
    config = train.Config(num_steps=50, display_step=10)
    seen = []

    def watch(t, lr, params, record) -> bool:
        seen.append((t, lr, record.step if record else None, params[0].shape))
        return t == 23

    result = train.train(mnist_data, config, numpy_backend(), emit=lambda line: None, watch=watch)
    assert [s[0] for s in seen] == list(range(1, 24))
    assert [s[2] for s in seen if s[2]] == [1, 10, 20]
    assert seen[0][1] == 0.1 and seen[0][3] == (784, 10)
    assert result.steps == 23 and result.interrupted
    short = train.train(mnist_data, train.Config(num_steps=23), numpy_backend(), emit=len)
    assert np.array_equal(result.W, short.W) and np.array_equal(result.b, short.b)


def test_no_watch_and_a_watch_that_never_stops_change_nothing(mnist_data, golden_lines) -> None:
    config = train.Config()
    plain = train.train(mnist_data, config, numpy_backend(), emit=lambda line: None)
    watched = train.train(
        mnist_data, config, numpy_backend(), emit=lambda line: None, watch=lambda *a: False
    )
    assert plain.lines == watched.lines and plain.lines[-1] == "Testset Accuracy: 0.9079"
    assert np.array_equal(plain.W, watched.W) and np.array_equal(plain.b, watched.b)
    assert not plain.interrupted and not watched.interrupted
    assert len(plain.lines) == len(golden_lines)


# The runs' HTTP API, on a real server with the real MNIST.

LEFT_S = 3.0  # the test servers' seconds before a run with no events stream is forgotten


@pytest.fixture(scope="module")
def server(mnist_data) -> DemoServer:
    """A server of no model, training at most 2 runs, on an ephemeral port."""
    runs = Runs(mnist_data, 2, left_s=LEFT_S, alive_s=0.3)
    server = DemoServer(("127.0.0.1", 0), None, None, mnist_data.test, quiet=True, runs=runs)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


def post(server: DemoServer, path: str, obj: Any) -> tuple[int, dict[str, Any]]:
    """(status, JSON answer) of a POST of ``obj`` as JSON."""
    status, _, body = request(server, "POST", path, json.dumps(obj).encode())
    return status, json.loads(body)


def get(server: DemoServer, path: str) -> tuple[int, dict[str, str], bytes]:
    return request(server, "GET", path)


def create(server: DemoServer, settings: dict[str, str], **options: Any) -> str:
    status, answer = post(server, "/api/runs", {"settings": settings, **options})
    assert status == 201, answer
    return answer["run"]


class Events:
    """A run's events stream, read in a thread: its frames (with their arrival times) and
    its ``: alive`` comments."""

    def __init__(self, server: DemoServer, run: str) -> None:
        self.conn = http.client.HTTPConnection(*server.server_address[:2], timeout=10)
        self.conn.request("GET", f"/api/runs/{run}/events")
        self.socket = self.conn.sock
        self.response = self.conn.getresponse()
        assert self.response.status == 200
        assert self.response.getheader("Content-Type") == "text/event-stream"
        assert self.response.getheader("Content-Length") is None
        self.frames: list[dict[str, Any]] = []
        self.times: list[float] = []
        self.alive = 0
        self.changed = threading.Condition()
        threading.Thread(target=self.read, daemon=True).start()

    def read(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            while line := self.response.fp.readline():
                with self.changed:
                    if line.startswith(b"data: "):
                        self.frames.append(json.loads(line[6:]))
                        self.times.append(time.monotonic())
                    elif line == b": alive\n":
                        self.alive += 1
                    self.changed.notify_all()

    def wait(self, test: Callable[[dict[str, Any]], bool], timeout: float = 20) -> dict[str, Any]:
        """The first frame that passes ``test``."""
        with self.changed:
            assert self.changed.wait_for(lambda: any(test(f) for f in self.frames), timeout), (
                self.frames[-1:]
            )
            return next(f for f in self.frames if test(f))

    def lines(self) -> list[str]:
        """The log lines of all frames, checked against their cursors."""
        out: list[str] = []
        for f in self.frames:
            assert f["lines_from"] == len(out)
            out.extend(f["lines"])
        return out

    def close(self) -> None:
        """Go away, as a closed page does (the reader's file holds the socket open)."""
        with contextlib.suppress(OSError):
            self.socket.shutdown(socket.SHUT_RDWR)
        self.conn.close()


def weights_of(frame: dict[str, Any]) -> np.ndarray:
    return np.frombuffer(base64.b64decode(frame["W"]), "<f4").reshape(784, 10)


def test_the_seed_run_to_its_end_is_the_command_lines(server, mnist_data) -> None:
    run = create(server, {}, speed=0)
    events = Events(server, run)
    last = events.wait(lambda f: f["test_accuracy"] is not None)
    config = train.Config()
    result = train.train(mnist_data, config, numpy_backend(), emit=lambda line: None)
    assert last["state"] == "finished" and last["step"] == last["total"] == 1000
    assert last["test_accuracy"] == result.test_accuracy and result.lines[-1].endswith("0.9079")
    assert events.lines() == result.lines
    records = [r for f in events.frames for r in f["records"]]
    assert [r["step"] for r in records] == [1, *range(100, 1001, 100)]
    assert np.array_equal(weights_of(last), result.W) and last["b"] == result.b.tolist()
    status, headers, body = get(server, f"/api/runs/{run}/model")
    assert status == 200 and headers["Content-Type"] == "application/octet-stream"
    assert headers["Content-Disposition"] == 'attachment; filename="scratchlr-1000.npz"'
    cli = modelfile.of_run(result.W, result.b, config, mnist_data, result.test_accuracy, None)
    assert body == modelfile.to_bytes(cli)
    status, answer = post(server, f"/api/runs/{run}", {"action": "step"})
    assert status == 409 and "ended (finished)" in answer["error"]
    events.close()


def test_pause_then_step_advances_exactly_one_step(server, mnist_data, tmp_path) -> None:
    run = create(server, {}, speed=0, paused=True)
    events = Events(server, run)
    first = events.wait(lambda f: True)
    assert (first["step"], first["state"], first["lines_from"]) == (0, "paused", 0)
    assert get(server, f"/api/runs/{run}/model")[0] == 409  # the zero start is no model
    for k in (1, 2):
        assert post(server, f"/api/runs/{run}", {"action": "step"}) == (200, {"state": "paused"})
        events.wait(lambda f, k=k: f["step"] == k)
    time.sleep(LEFT_S + 1)  # paused, and kept by its open stream
    assert events.frames[-1]["step"] == 2 and events.alive >= 3
    status, _, body = get(server, f"/api/runs/{run}/model")
    (tmp_path / "m.npz").write_bytes(body)
    m = modelfile.load(tmp_path / "m.npz")
    two = train.train(mnist_data, train.Config(num_steps=2), numpy_backend(), emit=len)
    assert m.interrupted_at == 2 and np.array_equal(m.W, two.W) and np.array_equal(m.b, two.b)
    x = mnist_data.test.images[0].reshape(28, 28)
    status, _, body = request(server, "POST", f"/api/predict?run={run}", png(x))
    answer = json.loads(body)
    expected = api.explanation(m.W, m.b, model.pixels(mnist_data.test.images[0], np.float32))
    assert status == 200 and answer == {**json.loads(json.dumps(expected)), "step": 2}
    status, _, body = get(server, f"/api/test/0?run={run}")
    assert json.loads(body)["step"] == 2 and json.loads(body)["logits"] == answer["logits"]
    served = json.loads(request(server, "POST", "/api/predict", png(x))[2])
    assert (
        served["step"] is None and served["probabilities"] == [float(np.float32(0.1))] * 10
    )  # zero W
    assert post(server, f"/api/runs/{run}", {"action": "stop"}) == (200, {"state": "stopped"})
    stopped = events.wait(lambda f: f["state"] == "stopped" and f["test_accuracy"] is not None)
    assert stopped["message"] == "Stopped at step 0002 (asked to stop)"
    events.close()


def test_speed_paces_the_steps_and_frames_stay_under_20_a_second(server) -> None:
    run = create(server, {"num_steps": "100000"}, speed=30)
    events = Events(server, run)
    start = time.monotonic()
    time.sleep(1.5)
    step = events.frames[-1]["step"]
    elapsed = time.monotonic() - start
    assert 0.5 * 30 * elapsed <= step <= 30 * elapsed + 3
    assert post(server, f"/api/runs/{run}", {"speed": 0}) == (200, {"state": "running"})
    time.sleep(1.0)
    later = events.frames[-1]["step"]
    assert later > step + 100  # as fast as it goes, from where it was
    times = np.array(events.times)
    per_second = [np.sum((times >= t) & (times < t + 1)) for t in times]
    assert max(per_second) <= 21, per_second  # arrivals jitter; the server sends 20 a second
    assert post(server, f"/api/runs/{run}", {"action": "pause"}) == (200, {"state": "paused"})
    paused = events.wait(lambda f: f["state"] == "paused")["step"]
    time.sleep(0.3)
    assert events.frames[-1]["step"] == paused
    post(server, f"/api/runs/{run}", {"action": "stop"})
    events.wait(lambda f: f["state"] == "stopped")
    events.close()


def test_the_too_large_preset_diverges_with_one_line(server) -> None:
    preset = next(p for p in settings.presets() if p["name"] == "too-large")
    run = create(server, preset["settings"], speed=0)
    events = Events(server, run)
    last = events.wait(lambda f: f["state"] == "diverged")
    assert last["step"] == 5 and "\n" not in last["message"]
    assert last["message"] == (
        "Diverged at step 0005: the training loss 183.5 is over 10 x its start, 2.303; the "
        "learning rate 50 is 98 x the stable limit 0.512 of plain gradient descent at zero "
        "weights (2/lambda_max), as scratchlr curvature says. The page stops such a run; the "
        "command line has no such stop"
    )
    events.close()


def test_bad_requests_get_one_line(server) -> None:
    cases = [
        ({"settings": {"momentum": "x"}}, "--momentum: 'x' is not a number"),
        ({"settings": {"tol": "1"}}, "'tol' is not a setting the page offers"),
        ({"settings": {"optimizer": "lbfgs"}}, "--optimizer must be one of sgd, adam"),
        ({"settings": {"num_steps": "200001"}}, "at most 200,000"),
        ({"settings": {}, "speed": -1}, "speed must be a number"),
        ({"settings": {}, "paused": "yes"}, "paused must be true or false"),
    ]
    for body, error in cases:
        status, answer = post(server, "/api/runs", body)
        assert status == 400 and error in answer["error"] and "\n" not in answer["error"]
    status, answer = post(server, "/api/check", {"settings": {"momentum": "0.9"}})
    assert (status, answer) == (
        200,
        {"command": "python -m scratchlr --momentum 0.9", "total": 1000},
    )
    assert post(server, "/api/check", {"settings": {"momentum": "2"}})[0] == 400
    for path in ("/api/runs/nope/events", "/api/runs/nope/model", "/api/test/0?run=nope"):
        assert get(server, path)[0] == 404
    assert post(server, "/api/runs/nope", {"action": "stop"})[0] == 404
    run = create(server, {}, paused=True)
    assert post(server, f"/api/runs/{run}", {"action": "jump"})[0] == 400
    assert post(server, f"/api/runs/{run}", {"action": "resume"}) == (200, {"state": "running"})
    assert post(server, f"/api/runs/{run}", {"action": "resume"})[0] == 409
    post(server, f"/api/runs/{run}", {"action": "stop"})


def test_settings_describe_the_offered_fields(server) -> None:
    status, _, body = get(server, "/api/settings")
    answer = json.loads(body)
    assert [f["name"] for f in answer["fields"]] == list(settings.OFFERED)
    assert (answer["max_runs"], answer["training"], answer["model"]) == (2, True, None)
    assert answer["speeds"] == [1, 3, 10, 30, 100, 300, 1000, 0]
    assert answer["classes"] == [str(c) for c in range(10)] and answer["dataset"] == "mnist"
    commands = {p["name"]: p["command"] for p in answer["presets"]}
    assert commands["too-large"] == "python -m scratchlr --learning-rate 50.0 --display-step 5"
    momentum = next(f for f in answer["fields"] if f["name"] == "momentum")
    assert momentum["optimizers"] == ["sgd", "rmsprop"] and momentum["kind"] == "float"


def test_the_cap_is_503_and_a_run_without_a_stream_ends(mnist_data) -> None:
    runs = Runs(mnist_data, 1, left_s=LEFT_S, alive_s=0.2)
    server = DemoServer(("127.0.0.1", 0), None, None, mnist_data.test, quiet=True, runs=runs)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        run = create(server, {}, paused=True)
        events = Events(server, run)
        status, answer = post(server, "/api/runs", {"settings": {}})
        assert status == 503
        assert answer["error"] == (
            "busy: 1 runs are open, the most this server trains at once (--max-runs 1); try "
            "again when one ends"
        )
        events.close()  # the page goes away
        deadline = time.monotonic() + LEFT_S + 10
        while get(server, f"/api/runs/{run}/model")[0] != 404 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert get(server, f"/api/runs/{run}/model")[0] == 404  # ended and forgotten
        create(server, {}, paused=True)
    finally:
        server.shutdown()
        server.server_close()


def test_a_paused_run_left_idle_and_a_run_past_its_time_are_stopped(mnist_data) -> None:
    runs = Runs(mnist_data, 2, idle_s=0.3, max_seconds=0.6)
    try:
        idle = runs.create({}, paused=True)
        slow = runs.create({}, speed=10)
        for run in (idle, slow):
            run.thread.join(timeout=10)
            assert run.ended and run.state == "stopped"
        assert idle.message == "Stopped at step 0000: paused with no action for 0.3 s"
        assert slow.message.startswith("Stopped at step 000") and 1 <= slow.snapshot[0] <= 8
        assert slow.message.endswith(": a run may last 0.6 s")
    finally:
        runs.close()


def test_the_recipe_preset_is_the_command_lines_recipe(mnist_data) -> None:
    preset = next(p for p in settings.presets() if p["name"] == "recipe")
    assert preset["command"] == (
        "python -m scratchlr --learning-rate 1.1 --batch-size 512 --num-steps 300 "
        "--display-step 10 --batching epoch --shuffle --weight-decay 1e-05 --momentum 0.93 "
        "--average 80 --validate"
    )
    runs = Runs(mnist_data, 1)
    try:
        run = runs.create(preset["settings"])
        run.thread.join(timeout=60)
        config = train.Config(**{n: from_text(n, t) for n, t in preset["settings"].items()})
        result = train.train(mnist_data, config, numpy_backend(), emit=len)
        step, W, b = run.weights()
        assert run.state == "finished" and step == 300 and run.lines == result.lines
        assert np.array_equal(W, result.W) and np.array_equal(b, result.b)
        assert run.test_accuracy == result.test_accuracy >= 0.92
        assert [r["val_accuracy"] is not None for r in run.records] == [True] * 31
    finally:
        runs.close()


def test_stepping_to_the_last_step_finishes_as_the_command_line(server, mnist_data) -> None:
    """A run stepped one at a time to its end finishes there (no wait for a step that will
    not come), and its model file is the command line's --save."""
    run = create(server, {"num_steps": "3"}, speed=0, paused=True)
    events = Events(server, run)
    for _ in range(3):
        assert post(server, f"/api/runs/{run}", {"action": "step"})[0] == 200
    last = events.wait(lambda f: f["state"] == "finished")
    assert last["step"] == 3 and last["test_accuracy"] is not None
    config = train.Config(num_steps=3)
    result = train.train(mnist_data, config, numpy_backend(), emit=len)
    cli = modelfile.of_run(result.W, result.b, config, mnist_data, result.test_accuracy, None)
    assert get(server, f"/api/runs/{run}/model")[2] == modelfile.to_bytes(cli)
    events.close()


def test_event_streams_are_capped_per_run_and_in_all(server) -> None:
    run = create(server, {}, speed=1, paused=True)
    streams = [Events(server, run) for _ in range(protocol.STREAMS_PER_RUN)]
    status, _, body = get(server, f"/api/runs/{run}/events")  # refused: answered and closed
    assert status == 503 and "at most 4 for a run" in json.loads(body)["error"]
    for stream in streams:
        stream.close()
    time.sleep(1)  # the server notices a closed stream at its next write (alive_s: 0.3 s)
    again = Events(server, run)  # a stream of its own again
    assert again.wait(lambda f: True)["state"] == "paused"
    assert post(server, f"/api/runs/{run}", {"action": "stop"}) == (200, {"state": "stopped"})
    again.close()


def test_batches_larger_than_the_training_split_and_deep_json_are_refused(server) -> None:
    status, answer = post(server, "/api/check", {"settings": {"batch_size": "7000000"}})
    assert status == 400 and answer["error"] == (
        "--batch-size 7,000,000: a run on the page may take at most the 55,000 training "
        "images a step"
    )
    status, _, body = request(server, "POST", "/api/check", b"[" * 200_000)
    assert status == 400 and json.loads(body) == {"error": "the body must be a JSON object"}
