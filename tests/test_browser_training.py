"""The training view in a real browser: headless Chromium drives the page's controls while the
server trains real MNIST with the engine's own loop, and the page shows what the command line
would: the seed's test accuracy, and a model file equal byte for byte to ``--save``'s. Skips
without a browser (fails under CI)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable

import pytest
from browser import chromium, errors, need_browser

from scratchlr.serve.runs import Runs
from scratchlr.serve.server import DemoServer

ROOT = Path(__file__).resolve().parents[1]
WAIT_S = 60  # the longest wait for the page: a seed run and a curvature estimate, on busy cores


@pytest.fixture(scope="module")
def downloads(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("downloads")


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory, downloads: Path):
    """A desktop-sized Chromium (1280 x 900) that saves downloads in ``downloads``."""
    need_browser()
    driver = chromium(tmp_path_factory.mktemp("chromium-profile"), width=1280, height=900)
    behaviour = {"behavior": "allow", "downloadPath": str(downloads)}
    driver.execute_cdp_cmd("Browser.setDownloadBehavior", behaviour)
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def served(mnist_data):
    """The page's URL: ``scratchlr serve`` with no model file, training on real MNIST, in this
    process. A run whose page went away is forgotten after 2 s, so tests do not queue."""
    runs = Runs(mnist_data, 2, left_s=2.0)
    server = DemoServer(("127.0.0.1", 0), None, None, mnist_data.test, quiet=True, runs=runs)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.url()
    server.shutdown()
    server.server_close()


def until(driver: Any, condition: Callable[[Any], Any], timeout: float = WAIT_S) -> Any:
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout, poll_frequency=0.05).until(condition)


def text(driver: Any, element_id: str) -> str:
    return driver.execute_script(f"return document.getElementById('{element_id}').textContent;")


def step(driver: Any) -> int:
    """The step the page shows (``120 / 1000``)."""
    return int(text(driver, "train-step-now").split("/")[0])


def opened(driver: Any, url: str) -> None:
    """The page, on its training view, its settings described and checked by the server; and
    a listener that keeps what each ``scratchlr:frame`` event says."""
    driver.get(url)
    until(driver, lambda d: d.find_elements("id", "train-command") and text(d, "train-command"))
    assert driver.find_element("id", "train-view").is_displayed()
    driver.execute_script("""
        window.frames_seen = [];
        document.addEventListener('scratchlr:frame', (e) => window.frames_seen.push({
            run: e.detail.run, step: e.detail.step, state: e.detail.state,
            weights: e.detail.W instanceof Float32Array ? e.detail.W.length : null,
            b: e.detail.b.length, scale: e.detail.scale}));""")


def start(driver: Any, preset: str, speed: str) -> None:
    """Choose a preset and a speed, wait for the server's command line of the preset, Start."""
    from selenium.webdriver.support.ui import Select

    button = driver.find_element("css selector", f"[data-preset='{preset}']")
    button.click()
    command = button.get_attribute("title")  # the preset's command line, from /api/settings
    until(driver, lambda d: text(d, "train-command") == command)
    Select(driver.find_element("id", "train-speed")).select_by_value(speed)
    until(driver, lambda d: d.find_element("id", "train-start").is_enabled())
    driver.find_element("id", "train-start").click()
    until(driver, lambda d: d.execute_script("return document.body.dataset.run || ''"))


def state(driver: Any) -> str:
    return text(driver, "train-state")


def templates(driver: Any) -> list[int]:
    """The RGBA bytes of the ten template canvases, one after another."""
    return driver.execute_script("""
        return [...document.querySelectorAll('.train-template canvas')].flatMap((c) =>
            [...c.getContext('2d').getImageData(0, 0, c.width, c.height).data]);""")


def saved_by_the_command_line(command: str, data_dir: Path, path: Path) -> str:
    """Run the page's command line with ``--save path``: its last line of output."""
    words = command.split()
    assert words[:3] == ["python", "-m", "scratchlr"], command
    proc = subprocess.run(
        [sys.executable, *words[1:], "--data-dir", str(data_dir), "--save", str(path)],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip().splitlines()[-1]


def test_the_seed_preset_ends_with_the_command_lines_accuracy_and_model_file(
    browser, served, downloads: Path, mnist_dir: Path, tmp_path: Path
) -> None:
    opened(browser, served)
    start(browser, "seed", "0")  # as fast as it goes
    until(browser, lambda d: state(d) in ("finished", "diverged", "stopped"))
    assert state(browser) == "finished" and step(browser) == 1000
    shown = text(browser, "train-test")
    assert shown == "Testset Accuracy: 0.9079"
    lines = text(browser, "train-log").splitlines()
    assert lines[0].startswith("Initial loss= ") and lines[-1] == shown  # the CLI's own lines
    download = browser.find_element("id", "train-download")
    assert download.is_displayed()
    download.click()
    model = downloads / "scratchlr-1000.npz"
    until(browser, lambda d: model.exists() and not list(downloads.glob("*.crdownload")))
    saved = tmp_path / "cli.npz"
    last = saved_by_the_command_line(text(browser, "train-command"), mnist_dir, saved)
    assert last == shown
    assert model.read_bytes() == saved.read_bytes()
    frames = browser.execute_script("return window.frames_seen;")
    assert frames and frames[-1]["state"] == "finished" and frames[-1]["step"] == 1000
    assert frames[-1]["weights"] == 784 * 10 and frames[-1]["b"] == 10
    assert errors(browser) == []


def test_pause_then_one_step_advances_exactly_one_step(browser, served) -> None:
    from selenium.webdriver.common.keys import Keys

    opened(browser, served)
    start(browser, "seed", "10")
    run = browser.execute_script("return document.body.dataset.run;")
    until(browser, lambda d: step(d) >= 3)
    browser.find_element("id", "train-pause").click()
    until(browser, lambda d: state(d) == "paused")
    time.sleep(0.5)  # a step already under way when the pause came lands
    paused_at = step(browser)
    first_lines = text(browser, "train-log").splitlines()[:2]
    assert browser.find_element("id", "train-pause").text == "Resume"
    browser.find_element("id", "train-step").click()
    until(browser, lambda d: step(d) == paused_at + 1)
    time.sleep(1.0)  # at 10 steps/s, a run that went on would be steps further by now
    assert step(browser) == paused_at + 1 and state(browser) == "paused"
    frames = browser.execute_script("return window.frames_seen;")
    assert {f["run"] for f in frames} == {run} and frames[-1]["step"] == paused_at + 1
    browser.find_element("id", "train-reset").click()  # back to no run, zero weights
    until(browser, lambda d: d.execute_script("return document.body.dataset.run === undefined"))
    assert state(browser) == "no run" and step(browser) == 0
    assert len(set(templates(browser))) == 2  # all white (and opaque): zero weights
    browser.find_element("id", "train-step").send_keys(Keys.ENTER)  # the keyboard's way
    until(browser, lambda d: step(d) == 1 and state(d) == "paused")
    lines = text(browser, "train-log").splitlines()
    assert lines[0].startswith("Initial loss= ") and lines[1].startswith("Step: 0001  loss= ")
    assert lines[:2] == first_lines  # the same start: a reset run replays the same steps
    browser.find_element("id", "train-reset").click()
    assert errors(browser) == []


def test_the_templates_change_while_training_and_the_speed_changes_live(browser, served) -> None:
    from selenium.webdriver.support.ui import Select

    opened(browser, served)
    start(browser, "recipe", "3")
    run = browser.execute_script("return document.body.dataset.run;")
    until(browser, lambda d: step(d) >= 2)
    before = templates(browser)
    Select(browser.find_element("id", "train-speed")).select_by_value("300")
    until(browser, lambda d: step(d) >= 60, timeout=15)  # 20 s at 3 steps/s
    after = templates(browser)
    assert before != after and len(set(after)) > 20  # redrawn, in many colours
    assert browser.execute_script("return document.body.dataset.run;") == run  # no reset
    browser.find_element("id", "train-reset").click()
    assert errors(browser) == []


def test_the_too_large_preset_shows_the_divergence_line(browser, served) -> None:
    opened(browser, served)
    start(browser, "too-large", "0")
    until(browser, lambda d: state(d) in ("finished", "diverged", "stopped"))
    assert state(browser) == "diverged"
    line = text(browser, "train-message")
    assert line.startswith("Diverged at step 0005: the training loss ") and "stable limit" in line
    assert "\n" not in line and browser.find_element("id", "train-message").is_displayed()
    assert errors(browser) == []


def test_refused_settings_disable_start_and_say_why(browser, served) -> None:
    opened(browser, served)
    rate = browser.find_element("id", "train-learning-rate")
    rate.clear()
    rate.send_keys("-1")
    until(browser, lambda d: text(d, "train-refusal"))
    assert text(browser, "train-refusal") == "--learning-rate must be positive, got -1.0"
    assert not browser.find_element("id", "train-start").is_enabled()
    assert not browser.find_element("id", "train-step").is_enabled()
    rate.clear()
    rate.send_keys("0.5")
    until(browser, lambda d: text(d, "train-command") == "python -m scratchlr --learning-rate 0.5")
    assert text(browser, "train-refusal") == ""
    assert browser.find_element("id", "train-start").is_enabled()
    browser.find_element("id", "train-copy").click()
    until(browser, lambda d: d.find_element("id", "train-copy").text == "Copied")
    refused = "/api/check - Failed to load resource: the server responded with a status of 400"
    assert [e for e in errors(browser) if refused not in e] == []  # only the 400 asked for


def test_each_field_shows_for_the_optimisers_that_use_it(browser, served) -> None:
    from selenium.webdriver.support.ui import Select

    opened(browser, served)
    momentum = browser.find_element("id", "train-momentum")
    betas = browser.find_element("id", "train-betas")
    assert momentum.is_displayed() and not betas.is_displayed()
    Select(browser.find_element("id", "train-optimizer")).select_by_value("adam")
    until(browser, lambda d: text(d, "train-command") == "python -m scratchlr --optimizer adam")
    assert betas.is_displayed() and not momentum.is_displayed()
    unlabelled = browser.execute_script("""
        return [...document.querySelectorAll('#train-view input, #train-view select')]
            .filter((e) => !e.labels.length && !e.getAttribute('aria-label')).map((e) => e.id);""")
    assert unlabelled == []


def test_before_a_run_the_charts_span_its_steps_and_the_key_reads_0(browser, served) -> None:
    from selenium.webdriver.common.action_chains import ActionChains

    opened(browser, served)
    steps = "return document.getElementById('train-loss-chart').dataset.steps || '';"
    until(browser, lambda d: d.execute_script(steps).endswith(" 1000"))  # the seed's 1000 steps
    assert text(browser, "train-step-now") == "0 / 1000"
    labels = browser.execute_script(
        "return [...document.querySelectorAll('.train-key-labels span')].map((s) => s.textContent);"
    )
    assert labels == ["", "0", ""]  # zero weights: not "\u22120 0 +0"
    # A help text, cut to one line, shows whole under the mouse, and is the input's title.
    rate = browser.find_element("id", "train-learning-rate")
    help_text = browser.find_element("id", "train-learning-rate-help")
    assert rate.get_attribute("title") == help_text.get_attribute("textContent")
    display = "return getComputedStyle(arguments[0]).display;"
    assert browser.execute_script(display, help_text) != "block"
    ActionChains(browser).move_to_element(help_text).perform()
    assert browser.execute_script(display, help_text) == "block"
    assert errors(browser) == []


def test_the_view_fits_a_phone(served, tmp_path: Path) -> None:
    need_browser()
    driver = chromium(tmp_path / "profile", width=390, height=844, phone=True)
    try:
        opened(driver, served)
        wide = driver.execute_script("return document.documentElement.scrollWidth;")
        assert wide <= 390
        box = driver.find_element("id", "train-start").rect
        assert box["x"] >= 0 and box["x"] + box["width"] <= 390 and box["y"] < 844
        # The run's buttons, then the charts and templates they change; the long settings after.
        tops = driver.execute_script(
            "return ['run', 'charts', 'templates', 'settings'].map((name) =>"
            " document.querySelector('.train-' + name).getBoundingClientRect().top);"
        )
        assert tops == sorted(tops)
        assert errors(driver) == []
    finally:
        driver.quit()
