"""Make docs/serve.png, the README's picture of ``scratchlr serve``: headless Chromium draws a
digit on the page of a saved model, and this saves what the browser shows.

    python docs/screenshot.py MODEL.npz [--data-dir DIR] [--digit 3] [--out docs/serve.png]

Needs what the browser tests need: Selenium (the [test] extra), and Debian's ``chromium`` and
``chromium-driver``. The drawing is one of ``tests/browser.py``'s strokes.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from browser import STROKES, chromium, draw, missing  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

from scratchlr.dataset import splits  # noqa: E402
from scratchlr.dataset.records import DATASETS  # noqa: E402
from scratchlr.files import modelfile  # noqa: E402
from scratchlr.serve.server import DemoServer  # noqa: E402


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("model", metavar="MODEL.npz")
    p.add_argument(
        "--data-dir", help="MNIST (for the test-image button; default: as the CLI finds it)"
    )
    p.add_argument("--digit", default="3", choices=sorted(STROKES))
    p.add_argument("--out", default=str(ROOT / "docs" / "serve.png"))
    args = p.parse_args()
    if missing():
        raise SystemExit(f"screenshot: {missing()}")
    m = modelfile.load(args.model)
    test = splits.load(DATASETS["mnist"], args.data_dir).test
    server = DemoServer(("127.0.0.1", 0), m.W, m.b, test, quiet=True)
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


if __name__ == "__main__":
    sys.exit(main())
