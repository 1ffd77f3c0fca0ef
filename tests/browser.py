"""A real browser for the demo page: Debian's headless Chromium, driven by Selenium, and
digits drawn on its ``#pad`` with pointer events. Nothing here downloads a browser or a
driver: both must be installed (``apt-get install chromium chromium-driver``)."""

from __future__ import annotations

import base64
import math
import os
import shutil
from pathlib import Path
from typing import Any

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"

# Strokes of a few digits, in the pad's own pixels (280 x 280): each a list of (x, y).
STROKES = {
    "7": [[(75, 60), (205, 60), (165, 130), (125, 230)]],
    "1": [[(140, 45), (140, 235)]],
    "0": [
        [
            (140 + 60 * math.sin(2 * math.pi * k / 24), 140 - 90 * math.cos(2 * math.pi * k / 24))
            for k in range(25)
        ]
    ],
    "3": [
        [
            (140 + 55 * math.sin(math.pi * k / 10), 95 - 45 * math.cos(math.pi * k / 10))
            for k in range(-3, 11)
        ]
        + [
            (140 + 60 * math.sin(math.pi * k / 10), 185 - 50 * math.cos(math.pi * k / 10))
            for k in range(0, 14)
        ]
    ],
}


def missing() -> str | None:
    """Why there is no browser to test with, or None."""
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (it comes with the [test] extra)"
    for path in (CHROMIUM, CHROMEDRIVER):
        if not (os.path.exists(path) or shutil.which(os.path.basename(path))):
            return f"{path} not found: apt-get install chromium chromium-driver"
    return None


def need_browser() -> None:
    """Skip the test without a browser to test with; under CI (``$CI`` set), fail it."""
    import pytest

    why = missing()
    if why and os.environ.get("CI"):
        pytest.fail(why + " (required under CI)")
    if why:
        pytest.skip(why)


def chromium(
    profile: Path,
    width: int = 1200,
    height: int = 1400,
    phone: bool = False,
    flags: tuple[str, ...] = (),
) -> Any:
    """A headless Chromium with a fresh profile in ``profile``, that reaches nothing but this
    machine. Its window is ``width`` x ``height``; with ``phone``, the page's viewport is
    exactly that, as a phone's (touch, the page's viewport meta obeyed): a headless window
    keeps a desktop's minimum width (500 px) and its own bars. ``flags``: more of Chromium's."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-quic",
        f"--user-data-dir={profile}",
        f"--window-size={width},{height}",
        *flags,
    ):
        options.add_argument(flag)
    if phone:
        metrics = {"width": width, "height": height, "pixelRatio": 1.0, "touch": True}
        options.add_experimental_option("mobileEmulation", {"deviceMetrics": metrics})
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})  # the console, for errors()
    return webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)


def draw(driver: Any, strokes: list[list[tuple[float, float]]], kind: str = "mouse") -> None:
    """Draw ``strokes`` (pad pixels) on ``#pad`` with a pointer of ``kind``: mouse, pen or touch."""
    from selenium.webdriver.common.actions import interaction
    from selenium.webdriver.common.actions.action_builder import ActionBuilder
    from selenium.webdriver.common.actions.pointer_input import PointerInput
    from selenium.webdriver.common.by import By

    pad = driver.find_element(By.ID, "pad")
    size = pad.size  # CSS pixels; the pad may be drawn smaller than its 280 x 280
    kinds = {
        "mouse": interaction.POINTER_MOUSE,
        "pen": interaction.POINTER_PEN,
        "touch": interaction.POINTER_TOUCH,
    }
    for stroke in strokes:
        actions = ActionBuilder(driver, mouse=PointerInput(kinds[kind], kind), duration=10)
        at = [
            (
                x * size["width"] / 280 - size["width"] / 2,
                y * size["height"] / 280 - size["height"] / 2,
            )
            for x, y in stroke
        ]  # offsets from the pad's centre
        actions.pointer_action.move_to(pad, round(at[0][0]), round(at[0][1])).pointer_down()
        for x, y in at[1:]:
            actions.pointer_action.move_to(pad, round(x), round(y))
        actions.pointer_action.pointer_up()
        actions.perform()


def pad_png(driver: Any) -> bytes:
    """The pad's pixels as the page's own PNG (``canvas.toDataURL``)."""
    url = driver.execute_script("return document.getElementById('pad').toDataURL('image/png');")
    return base64.b64decode(url.split(",", 1)[1])


def errors(driver: Any) -> list[str]:
    """The page's console errors since last asked: exceptions, policy violations, failed loads."""
    return [entry["message"] for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]
