"""Make the README's pictures of ``scratchlr serve``, as headless Chromium shows the page:
docs/serve.png, a digit drawn on the page of a saved model, and docs/train.png, the training
view at 1280 x 900 halfway through the README's recipe, run by the page at 10 steps a second.

    python docs/screenshot.py MODEL.npz [--data-dir DIR] [--digit 3] [--out docs/serve.png]
    python docs/screenshot.py --train [--data-dir DIR] [--out docs/train.png]

Needs what the browser tests need: Selenium (the [test] extra), and Debian's ``chromium`` and
``chromium-driver``. The drawing is one of ``tests/browser.py``'s strokes.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from browser import STROKES, chromium, draw, missing  # noqa: E402
from selenium.webdriver.support.ui import Select, WebDriverWait  # noqa: E402

from scratchlr.dataset import splits  # noqa: E402
from scratchlr.dataset.records import DATASETS  # noqa: E402
from scratchlr.files import modelfile  # noqa: E402
from scratchlr.serve.runs import Runs  # noqa: E402
from scratchlr.serve.server import DemoServer  # noqa: E402

HALFWAY = 150  # the recipe's step at which docs/train.png is taken (of 300)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("model", metavar="MODEL.npz", nargs="?", help="for the drawing view")
    p.add_argument("--train", action="store_true", help="the training view instead")
    p.add_argument(
        "--data-dir", help="MNIST (for the test-image button; default: as the CLI finds it)"
    )
    p.add_argument("--digit", default="3", choices=sorted(STROKES))
    p.add_argument("--out", help="default: docs/serve.png, or docs/train.png with --train")
    args = p.parse_args()
    if missing():
        raise SystemExit(f"screenshot: {missing()}")
    if args.train:
        return training_view(args.data_dir, args.out or str(ROOT / "docs" / "train.png"))
    if args.model is None:
        p.error("give a MODEL.npz, or --train")
    args.out = args.out or str(ROOT / "docs" / "serve.png")
    m = modelfile.load(args.model)
    test = splits.load(DATASETS["mnist"], args.data_dir).test
    name = Path(args.model).name  # the page says which model it shows
    server = DemoServer(("127.0.0.1", 0), m.W, m.b, test, quiet=True, model=name)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    with tempfile.TemporaryDirectory() as profile:
        driver = chromium(Path(profile), width=1100, height=1250)
        try:
            driver.get(server.url())
            WebDriverWait(driver, 20).until(
                lambda d: "Draw a digit" in d.find_element("id", "status").text
            )
            draw(driver, STROKES[args.digit])
            WebDriverWait(driver, 20).until(
                lambda d: "Draw again" in d.find_element("id", "status").text
            )
            driver.save_screenshot(args.out)
            print(f"{args.out}: the page says {driver.find_element('id', 'prediction').text}")
        finally:
            driver.quit()
    server.shutdown()
    return 0


def step_shown(driver: Any) -> int:
    """The step the training view shows (``150 / 300``)."""
    return int(driver.find_element("id", "train-step-now").text.split("/")[0])


def training_view(data_dir: str | None, out: str) -> int:
    """The training view mid-run: the recipe preset at 10 steps/s, shot at step HALFWAY."""
    data = splits.load(DATASETS["mnist"], data_dir)
    server = DemoServer(("127.0.0.1", 0), None, None, data.test, quiet=True, runs=Runs(data, 1))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    with tempfile.TemporaryDirectory() as profile:
        driver = chromium(Path(profile), width=1280, height=900)
        metrics = {"width": 1280, "height": 900, "deviceScaleFactor": 1, "mobile": False}
        driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", metrics)  # the viewport
        try:
            driver.get(server.url())
            wait = WebDriverWait(driver, 60)
            recipe = wait.until(lambda d: d.find_element("css selector", "[data-preset=recipe]"))
            recipe.click()
            wait.until(lambda d: d.find_element("id", "train-command").text.endswith("--validate"))
            Select(driver.find_element("id", "train-speed")).select_by_value("10")
            driver.find_element("id", "train-start").click()
            wait.until(lambda d: step_shown(d) >= HALFWAY)
            driver.save_screenshot(out)
            print(f"{out}: step {driver.find_element('id', 'train-step-now').text}")
        finally:
            driver.quit()
    server.shutdown()
    server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
