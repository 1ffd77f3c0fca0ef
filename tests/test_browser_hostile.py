"""The demo server against another site's page, in a real browser: headless Chromium told to
resolve ``rebind.example`` and ``evil.example`` to 127.0.0.1, as a DNS rebinding attack makes a
browser do. The page under the foreign name gets the refusal, its requests too, and a form on
another site cannot post to the server; under 127.0.0.1 the page works. Skips without a browser
(fails under CI)."""

from __future__ import annotations

import base64
import html
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import quote, unquote

import pytest
from browser import chromium, need_browser

from scratchlr.serve.server import DemoServer

pytest.importorskip("PIL.Image", reason="Pillow (the [serve] extra) is not installed")
RULES = "MAP rebind.example 127.0.0.1, MAP evil.example 127.0.0.1"
FETCH = """
const [path, method, done] = arguments;
const canvas = document.createElement('canvas');
canvas.width = canvas.height = 280;
const c = canvas.getContext('2d');
c.fillStyle = 'black'; c.fillRect(0, 0, 280, 280);
c.fillStyle = 'white'; c.fillRect(120, 60, 40, 160);
canvas.toBlob(png => fetch(path, {method, body: method === 'POST' ? png : undefined})
    .then(r => r.text().then(text => done({status: r.status, text})))
    .catch(e => done({status: 0, text: String(e)})), 'image/png');
"""


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory):
    need_browser()
    profile = tmp_path_factory.mktemp("chromium-profile")
    rules = f"--host-resolver-rules={RULES}"  # the attack's names resolve to 127.0.0.1
    driver = chromium(profile, 1200, 900, flags=(rules,))
    driver.set_script_timeout(20)
    yield driver
    driver.quit()


def form_page(action: str) -> bytes:
    """Another site's page: a form that posts to ``action``, as a page would without asking."""
    return (
        "<!doctype html><title>evil</title>"
        f'<form id="f" method="post" enctype="text/plain" action="{html.escape(action)}">'
        '<input name="a" value="b"><button id="go">go</button></form>'
    ).encode()


@pytest.fixture(scope="module")
def other_site():
    """A server of another site's pages on 127.0.0.1 (as ``evil.example``): ``/?to=URL`` is a
    form that posts to URL."""

    class Pages(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = form_page(unquote(self.path.partition("?to=")[2]))
            self.send_response(HTTPStatus.OK)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Pages)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://evil.example:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


def body_text(driver: Any) -> str:
    """The text the page now open shows."""
    return driver.execute_script("return document.body ? document.body.innerText : '';")


def fetched(driver: Any, path: str, method: str = "GET") -> dict:
    """{status, text} of a fetch of ``path`` by the page now open (status 0: it failed)."""
    return driver.execute_async_script(FETCH, path, method)


def test_the_page_under_a_rebound_name_is_refused(browser, synthetic: DemoServer) -> None:
    port = synthetic.server_address[1]
    browser.get(f"http://rebind.example:{port}/")
    text = body_text(browser)
    want = f"this server answers to 127.0.0.1:{port} or localhost:{port}, not Host rebind."
    assert want in text and browser.execute_script("return document.getElementById('pad')") is None
    for path, method in (("/api/predict", "POST"), ("/api/templates", "GET"), ("/", "GET")):
        answer = fetched(browser, path, method)  # from the rebound page's own origin
        assert answer["status"] == 403 and "answers to" in answer["text"], (path, answer)


def test_the_same_browser_gets_the_page_at_127_0_0_1(browser, synthetic: DemoServer) -> None:
    browser.get(synthetic.url())
    assert browser.execute_script("return document.getElementById('pad') !== null")
    answer = fetched(browser, "/api/predict", "POST")
    assert answer["status"] == 200 and '"prediction"' in answer["text"], answer
    browser.get(f"http://localhost:{synthetic.server_address[1]}/")
    assert browser.execute_script("return document.getElementById('pad') !== null")


def test_another_sites_form_cannot_post_to_the_server(
    browser, synthetic: DemoServer, other_site: str
) -> None:
    """The browser sends the POST (a form needs no permission), with the other site's Origin
    and ``Sec-Fetch-Site: cross-site`` (from a ``data:`` page, ``Origin: null``): the server
    refuses it."""
    from selenium.webdriver.support.ui import WebDriverWait

    target = synthetic.url() + "api/predict"
    for page in (
        other_site + "?to=" + quote(target, safe=""),
        "data:text/html;base64," + base64.b64encode(form_page(target)).decode(),
    ):
        browser.get(page)
        browser.find_element("id", "go").click()
        WebDriverWait(browser, 20).until(lambda d: d.current_url.startswith(synthetic.url()))
        WebDriverWait(browser, 20).until(lambda d: "anything here" in body_text(d))
        assert "may not change anything here" in body_text(browser), page[:40]
