"""The demo page in a real browser: headless Chromium draws on ``#pad``, and the page shows
what ``scratchlr predict`` says of the pad's own PNG. Skips without a browser (fails under CI)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from browser import STROKES, chromium, draw, errors, missing, pad_png

from scratchlr import train
from scratchlr.backend import numpy_backend
from scratchlr.files import modelfile
from scratchlr.serve.server import DemoServer

pytest.importorskip("PIL.Image", reason="Pillow (the [serve] extra) is not installed")
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory):
    why = missing()
    if why:
        if os.environ.get("CI"):
            pytest.fail(why + " (required under CI)")
        pytest.skip(why)
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
    server = DemoServer(("127.0.0.1", 0), result.W, result.b, mnist_data.test, quiet=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield path, server.url()
    server.shutdown()
    server.server_close()


def shown(driver, until: str) -> dict:
    """Wait until the status line reads ``until``; then what the page shows."""
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(driver, 20).until(lambda d: until in d.find_element("id", "status").text)
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
