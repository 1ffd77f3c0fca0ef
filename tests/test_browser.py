"""The demo page in a real browser: headless Chromium draws on ``#pad``, and the page shows
what ``scratchlr predict`` says of the pad's own PNG. Skips without a browser (fails under CI)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from browser import STROKES, chromium, draw, errors, need_browser, pad_png

from scratchlr import train
from scratchlr.backend import numpy_backend
from scratchlr.files import modelfile
from scratchlr.serve.runs import Runs
from scratchlr.serve.server import DemoServer

pytest.importorskip("PIL.Image", reason="Pillow (the [serve] extra) is not installed")
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory):
    need_browser()
    driver = chromium(tmp_path_factory.mktemp("chromium-profile"))
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def served(mnist_data, tmp_path_factory: pytest.TempPathFactory):
    """(model file, the page's URL): a model trained on MNIST, served in this process."""
    config = train.Config(epochs=1, shuffle=True, momentum=0.9, learning_rate=0.5, average=200)
    result = train.train(mnist_data, config, numpy_backend(), emit=lambda line: None)
    path = tmp_path_factory.mktemp("model") / "m.npz"
    modelfile.save(path, modelfile.ModelFile(result.W, result.b, config))
    server = DemoServer(
        ("127.0.0.1", 0), result.W, result.b, mnist_data.test, quiet=True, model=path.name
    )
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield path, server.url()
    server.shutdown()
    server.server_close()


def shown(driver, until: str) -> dict:
    """Wait until the status line reads ``until``; then what the page shows."""
    from selenium.webdriver.support.ui import WebDriverWait

    status = "return document.getElementById('status').textContent;"  # hidden views' too
    WebDriverWait(driver, 20).until(lambda d: until in d.execute_script(status))
    return driver.execute_script("""
        return {prediction: document.getElementById('prediction').textContent,
                status: document.getElementById('status').textContent,
                probabilities: [...document.querySelectorAll('#scores tbody tr')]
                    .map(r => r.cells[2].textContent),
                winner: [...document.querySelectorAll('.template')]
                    .findIndex(t => t.classList.contains('winner')),
                templates: document.querySelectorAll('.template canvas').length};""")


def predict(model: Path, image: Path) -> dict:
    proc = subprocess.run(
        [sys.executable, "-m", "scratchlr", "predict", str(model), str(image), "--json"],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)[0]


@pytest.mark.parametrize(
    "digit, kind", [("7", "mouse"), ("0", "pen"), ("1", "touch"), ("3", "mouse")]
)
def test_a_drawn_digit_shows_what_predict_says_of_the_pad(
    browser, served, tmp_path: Path, digit: str, kind: str
) -> None:
    model, url = served
    browser.get(url)
    assert shown(browser, "Draw a digit")["templates"] == 10
    draw(browser, STROKES[digit], kind)
    page = shown(browser, "Draw again")
    image = tmp_path / "pad.png"
    image.write_bytes(pad_png(browser))
    want = predict(model, image)
    assert page["prediction"] == str(want["prediction"]) and page["winner"] == want["prediction"]
    assert page["probabilities"] == [f"{p:.4f}" for p in want["probabilities"]]
    assert errors(browser) == []
    browser.save_screenshot(str(tmp_path / "page.png"))
    from PIL import Image

    with Image.open(tmp_path / "page.png") as shot:
        assert (
            shot.size[0] >= 800 and np.asarray(shot.convert("L")).std() > 10
        )  # a page, not a blank


def test_clear_and_a_test_image(browser, served) -> None:
    _, url = served
    browser.get(url)
    shown(browser, "Draw a digit")
    draw(browser, STROKES["1"])
    shown(browser, "Draw again")
    browser.find_element("id", "clear").click()
    ink = browser.execute_script("""
        const c = document.getElementById('pad');
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        return d.reduce((a, v, i) => a + (i % 4 === 3 ? 0 : v), 0);""")
    assert ink == 0 and "Draw a digit" in browser.find_element("id", "status").text
    browser.find_element("id", "test").click()
    page = shown(browser, "Test image")
    assert page["prediction"].isdigit() and (
        "(right)" in page["status"] or "(wrong)" in page["status"]
    )
    assert errors(browser) == []


def test_a_tap_is_a_dot_and_other_buttons_draw_nothing(browser, served) -> None:
    _, url = served
    browser.get(url)
    shown(browser, "Draw a digit")
    draw(browser, [[(140, 140)]])  # down and up at one point
    page = shown(browser, "Draw again")
    assert page["prediction"].isdigit() and errors(browser) == []
    browser.find_element("id", "clear").click()
    from selenium.webdriver.common.action_chains import ActionChains

    ActionChains(browser).move_to_element(
        browser.find_element("id", "pad")
    ).context_click().perform()
    ink = browser.execute_script("""
        const c = document.getElementById('pad');
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        return d.reduce((a, v, i) => a + (i % 4 === 3 ? 0 : v), 0);""")
    assert ink == 0


@pytest.fixture()
def phone(tmp_path: Path):
    """A headless Chromium whose viewport is a phone's: 390 x 844 CSS pixels, touch."""
    need_browser()
    driver = chromium(tmp_path / "chromium-profile", width=390, height=844, phone=True)
    yield driver
    driver.quit()


def test_on_a_phone_the_answer_is_in_view_after_drawing(phone, served, tmp_path: Path) -> None:
    model, url = served
    phone.get(url)
    shown(phone, "Draw a digit")
    assert phone.execute_script("return [innerWidth, innerHeight];") == [390, 844]
    draw(phone, STROKES["7"], "touch")
    page = shown(phone, "Draw again")
    image = tmp_path / "pad.png"
    image.write_bytes(pad_png(phone))
    assert page["prediction"] == str(predict(model, image)["prediction"])
    box = phone.execute_script("""
        const b = document.getElementById('prediction').getBoundingClientRect();
        return {top: b.top, bottom: b.bottom, left: b.left, right: b.right};""")
    assert 0 <= box["top"] < box["bottom"] <= 844 and 0 <= box["left"] < box["right"] <= 390
    assert errors(phone) == []
    phone.save_screenshot(str(tmp_path / "phone.png"))


HOLD_FETCH = """
    // Each fetch waits until window.release() (the test's slow server), and remembers its body.
    window.held = [];
    window.bodies = [];
    const real = window.fetch;
    window.fetch = (url, options) => {
        window.bodies.push(options && options.body);
        return new Promise((go) => window.held.push(() => go(real(url, options))));
    };
    window.release = () => { window.held.splice(0).forEach((go) => go()); };"""


def test_the_request_leaves_when_the_stroke_ends_and_the_old_answer_shows_stale(
    browser, served
) -> None:
    _, url = served
    browser.get(url)
    shown(browser, "Draw a digit")
    draw(browser, STROKES["1"])
    shown(browser, "Draw again")
    browser.execute_script("""
        window.ups = [];
        document.getElementById('pad').addEventListener('pointerup',
            (e) => ups.push(e.timeStamp));""")
    browser.find_element("id", "clear").click()
    draw(browser, STROKES["7"])
    page = shown(browser, "Draw again")
    delay = browser.execute_script("""
        const sent = performance.getEntriesByType('resource')
            .filter((e) => e.name.includes('/api/predict')).pop();
        return sent.startTime - ups[ups.length - 1];""")
    assert page["prediction"] == "7" and 0 <= delay < 300  # toBlob's idle wait made it 1005 ms
    browser.execute_script(HOLD_FETCH)
    browser.find_element("id", "clear").click()
    draw(browser, STROKES["0"])
    waiting = browser.execute_script("""
        return {held: window.held.length,
                working: document.getElementById('status').classList.contains('working'),
                stale: document.getElementById('draw-view').classList.contains('stale'),
                dim: getComputedStyle(document.getElementById('answer')).opacity};""")
    assert waiting["held"] == 1 and waiting["working"] and waiting["stale"]
    assert float(waiting["dim"]) < 1 and shown(browser, "Asking")["prediction"] == "7"
    browser.execute_script("window.release();")
    page = shown(browser, "Draw again")
    assert page["prediction"] == "0" and errors(browser) == []
    assert not browser.execute_script(
        "return document.getElementById('draw-view').classList.contains('stale');"
    )


def digit_picture(path: Path, side: int) -> None:
    """A dark 3 on white, ``side`` pixels square, as a photo of paper would be (PNG)."""
    from PIL import Image, ImageDraw

    picture = Image.new("L", (side, side), 255)
    pen = ImageDraw.Draw(picture)
    points = [(x * side / 280, y * side / 280) for x, y in STROKES["3"][0]]
    pen.line(points, fill=20, width=max(2, side // 14), joint="curve")
    picture.save(path)


def test_a_chosen_picture_gets_what_predict_says_of_it(browser, served, tmp_path: Path) -> None:
    model, url = served
    browser.get(url)
    shown(browser, "Draw a digit")
    small = tmp_path / "three.png"
    digit_picture(small, 200)
    browser.find_element("id", "upload").send_keys(str(small))
    page = shown(browser, "Your picture three.png")
    want = predict(model, small)
    assert page["prediction"] == str(want["prediction"]) == "3"
    assert page["probabilities"] == [f"{p:.4f}" for p in want["probabilities"]]
    large = tmp_path / "photo.png"
    digit_picture(large, 1600)  # 2.6 million pixels: the page sends it scaled to 560
    browser.execute_script("""
        window.bodies = [];  // what each fetch posts
        const real = window.fetch;
        window.fetch = (url, options) => {
            window.bodies.push(options && options.body);
            return real(url, options);
        };""")
    browser.find_element("id", "upload").send_keys(str(large))
    page = shown(browser, "Your picture photo.png")
    sent = browser.execute_async_script("""
        const done = arguments[arguments.length - 1];
        const body = window.bodies[window.bodies.length - 1];
        createImageBitmap(body).then((b) => done([b.width, b.height, body.type, body.size]));""")
    assert sent[:3] == [560, 560, "image/png"] and sent[3] <= 1 << 20
    assert page["prediction"] == "3" and errors(browser) == []


def test_the_maps_and_templates_have_a_key_names_and_a_caption(browser, served) -> None:
    _, url = served
    browser.get(url)
    shown(browser, "Draw a digit")
    draw(browser, STROKES["7"])
    shown(browser, "Draw again")
    page = browser.execute_script("""
        const text = (id) => document.getElementById(id).textContent;
        const key = (id) => [...document.querySelectorAll('#' + id + ' .ticks span')]
            .map((s) => s.textContent);
        return {why: key('why-key'), templates: key('template-key'),
                ramp: document.querySelectorAll('.key canvas.ramp').length,
                names: [text('why0-text'), text('why1-text')],
                frame: getComputedStyle(document.getElementById('why0')).borderTopWidth,
                notes: [...document.querySelectorAll('.note')].map((n) => n.textContent)};""")
    scale = [float(t.replace("\u2212", "-")) for t in page["why"][::2]]
    assert page["why"][1] == "0" and -scale[0] == scale[1] > 0 and page["ramp"] == 2
    assert page["templates"][1] == "0" and page["templates"][0].startswith("\u2212")
    assert page["names"][0].startswith("winner: class 7")
    assert page["names"][1].startswith("runner-up: class ")
    assert page["frame"] != "0px"  # zero is near-white: the map's edge must show on the card
    notes = " ".join(" ".join(n.split()) for n in page["notes"]).lower()
    assert "red raises the class's logit where the image has ink, blue lowers it" in notes
    assert "92.5" in notes and "small, thick or off-centre" in notes


def test_a_stopped_server_is_said_plainly(browser, mnist_data) -> None:
    W = np.zeros((784, 10), np.float32)
    b = np.zeros(10, np.float32)
    server = DemoServer(
        ("127.0.0.1", 0), W, b, mnist_data.test, quiet=True, timeout_s=0.3, model="zero.npz"
    )
    threading.Thread(target=server.serve_forever, daemon=True).start()
    browser.get(server.url())
    shown(browser, "Draw a digit")
    draw(browser, STROKES["1"])
    shown(browser, "Draw again")
    server.shutdown()
    server.server_close()
    import time

    time.sleep(1)  # kept-alive connections time out (timeout_s) and close
    draw(browser, STROKES["7"])
    page = shown(browser, "not answering")
    assert page["status"] == "the server is not answering: is scratchlr serve still running?"
    assert page["prediction"] == "?"
    assert browser.execute_script(
        "return document.getElementById('draw-view').classList.contains('stale');"
    )
    errors(browser)  # the refused connections' console lines, not the next test's


@pytest.fixture(scope="module")
def training(mnist_data):
    """The page's URL on a server with no model and room for one run."""
    runs = Runs(mnist_data, max_runs=1, left_s=600)  # no events stream here: keep runs anyway
    server = DemoServer(("127.0.0.1", 0), None, None, mnist_data.test, quiet=True, runs=runs)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.url()
    server.shutdown()
    server.server_close()


def post(url: str, body: dict) -> dict:
    request = urllib.request.Request(
        url, json.dumps(body).encode(), {"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def test_with_no_model_the_page_opens_on_training_and_says_so_when_drawing(
    browser, training
) -> None:
    browser.get(training)
    shown(browser, "no model yet")
    views = browser.execute_script("""
        const seen = (id) => !document.getElementById(id).hidden;
        return [seen('train-view'), seen('draw-view'), seen('show-train')];""")
    assert views == [True, False, True]
    browser.find_element("id", "show-draw").click()
    draw(browser, STROKES["7"])
    page = shown(browser, "no model yet: train one, or serve a model file")
    assert page["prediction"] == "?" and page["probabilities"] == ["0.1000"] * 10
    # Said once (the status line), and no class marked the winner of a ten-way tie.
    said = browser.execute_script("return document.getElementById('draw-view').textContent;")
    assert said.count("no model yet") == 1
    assert browser.find_elements("css selector", "#scores tr.winner") == []
    assert page["winner"] == -1
    key = browser.execute_script(
        "return [...document.querySelectorAll('#template-key .ticks span')]"
        ".map((s) => s.textContent);"
    )
    assert key[1] == "0" and key[0] != "\u22120"  # zero weights: not "\u22120 0 +0"
    assert errors(browser) == []


def test_a_drawing_while_a_run_trains_gets_its_weights_now(
    browser, training, tmp_path: Path
) -> None:
    run = post(training + "api/runs", {"settings": {}, "speed": 1, "paused": False})["run"]
    try:
        browser.get(training)
        shown(browser, "no model yet")
        browser.find_element("id", "show-draw").click()
        browser.execute_script("document.body.dataset.run = arguments[0];", run)
        for _ in range(5):  # the run may take a step between the answer and the download
            browser.find_element("id", "clear").click()
            draw(browser, STROKES["3"])
            page = shown(browser, "Draw again")
            with urllib.request.urlopen(f"{training}api/runs/{run}/model", timeout=30) as got:
                (tmp_path / "run.npz").write_bytes(got.read())
            step = modelfile.load(tmp_path / "run.npz").interrupted_at
            text = browser.find_element("id", "answer-text").text
            if text.endswith(f"the model at step {step}"):
                break
        else:
            pytest.fail(f"the run stepped between each answer and download: {text}, {step}")
        assert step is not None and step > 0
        image = tmp_path / "pad.png"
        image.write_bytes(pad_png(browser))
        want = predict(tmp_path / "run.npz", image)
        assert page["prediction"] == str(want["prediction"])
        assert page["probabilities"] == [f"{p:.4f}" for p in want["probabilities"]]
        browser.find_element("id", "test").click()  # a test image, with the run's weights too
        shown(browser, "Test image")
        assert "the model at step " in browser.find_element("id", "answer-text").text
        # A frame (train.js sends one per update) repaints the templates: class 0 all +1 here.
        browser.execute_script(
            """
            const W = new Float32Array(784 * 10).map((_, i) => (i % 10 === 0 ? 1 : -1));
            document.dispatchEvent(new CustomEvent('scratchlr:frame', {detail: {
                run: arguments[0], step: 99, state: 'running', W, b: new Array(10).fill(0),
                scale: 1}}));""",
            run,
        )
        from selenium.webdriver.support.ui import WebDriverWait

        pixel = """
            const c = document.querySelectorAll('.template canvas')[arguments[0]];
            return [...c.getContext('2d').getImageData(5, 5, 1, 1).data.slice(0, 3)];"""
        WebDriverWait(browser, 5).until(lambda d: d.execute_script(pixel, 0) == [103, 0, 31])
        assert browser.execute_script(pixel, 1) == [5, 48, 97]  # the palette's ends
        assert errors(browser) == []
    finally:
        post(f"{training}api/runs/{run}", {"action": "stop"})
