"""The playground in a real browser: Debian's headless Chromium, driven by selenium, against a real server."""

from __future__ import annotations

import os
import struct
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait
from websockets.http11 import Request, Response

from rpc_server import builtin_tools
from rpc_server.handshake import Admission

from ..components import require_command
from ..servers import ThreadedServer

WAIT_S = 60  # a bound on what normally takes well under a second; a broken page fails, never hangs
DOCS = Path(__file__).resolve().parents[2] / "docs"
# Flags that work on these machines: no sandbox (root), no GPU, and nothing reaching the network by itself.
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1400,900",
)


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[str, list[str]]]:
    """A server with the built-in tools in a thread, and the query strings its upgrades came with."""
    queries: list[str] = []

    def record(request: Request, admission: Admission) -> Response | None:
        queries.append(request.path.partition("?")[2])
        return None

    server = ThreadedServer()
    server.server.handshake.gates.append(record)
    url = server.start()
    yield url.removeprefix("ws://").removesuffix("/ws"), queries
    server.stop()


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebDriver]:
    """Headless Chromium with a fresh profile, stopped after the module."""
    chromium = require_command("chromium", "chromium")
    driver_path = require_command("chromedriver", "chromium-driver")
    options = Options()
    options.binary_location = chromium
    for flag in (*FLAGS, f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    driver.set_page_load_timeout(WAIT_S)
    yield driver
    driver.quit()


class Page:
    """The playground open in the browser, with waits bounded by WAIT_S."""

    def __init__(self, driver: WebDriver, host: str) -> None:
        self.driver = driver
        self.host = host
        driver.get(f"http://{host}/playground")
        self.wait_for(lambda: self.find('button[data-tool="multiply"]'), "the tool list")

    def wait_for(self, condition: Callable[[], Any], what: str) -> Any:
        return WebDriverWait(self.driver, WAIT_S).until(lambda _: condition(), f"gave up waiting for {what}")

    def find(self, css: str) -> Any:
        found = self.driver.find_elements(By.CSS_SELECTOR, css)
        return found[0] if found else None

    def text(self, css: str) -> str:
        element = self.find(css)
        return "" if element is None else str(element.text)

    def open_tool(self, name: str) -> None:
        self.find(f'button[data-tool="{name}"]').click()
        self.wait_for(lambda: self.text("#tool-name") == name, f"the form of {name}")

    def fill(self, **values: Any) -> None:
        for name, value in values.items():
            field = self.find(f"#param-{name}")
            field.clear()
            field.send_keys(str(value))

    def call(self, name: str, **values: Any) -> None:
        self.open_tool(name)
        self.fill(**values)
        self.find("#call").click()

    def result(self) -> str:
        return str(self.wait_for(lambda: self.text("#result") or None, "a result"))

    def error_code(self) -> str:
        return str(self.wait_for(lambda: self.text("#error-code") or None, "an error"))


@pytest.fixture
def page(browser: WebDriver, served: tuple[str, list[str]]) -> Page:
    return Page(browser, served[0])


def test_the_page_lists_the_tools_that_rpc_discover_names(page: Page) -> None:
    """Every built-in tool appears with its summary, and the status names the endpoint it connected to."""
    buttons = page.driver.find_elements(By.CSS_SELECTOR, "#tools button")
    assert [b.get_attribute("data-tool") for b in buttons] == list(builtin_tools())
    assert "Multiply two numbers" in page.text('button[data-tool="multiply"]')
    assert page.text("#status") == f"connected to ws://{page.host}/ws"
    assert page.text('button[data-topic="clock"]').startswith("clock")


def test_multiply_3_and_4_shows_12(page: Page) -> None:
    """The form built from multiply's schema sends 3 and 4 and shows the result 12."""
    page.call("multiply", a=3, b=4)
    assert page.result() == "12"
    assert page.find("#error").get_attribute("hidden") is not None


def test_divide_by_0_shows_error_1001_with_its_message_and_data(page: Page) -> None:
    """divide 1 by 0 shows code 1001, its message and its data."""
    page.call("divide", dividend=1, divisor=0)
    assert page.error_code() == "1001"
    assert page.text("#error-message") == "Division by zero"
    assert page.text("#error-data") == '"divisor is 0"'


def test_sum_takes_its_numbers_as_one_json_array(page: Page) -> None:
    """sum's variadic param is a JSON array field; [1, 2, 3.5] answers 6.5."""
    page.call("sum", numbers="[1, 2, 3.5]")
    assert page.result() == "6.5"


def test_count_streams_its_parts_to_a_full_bar(page: Page) -> None:
    """count 5 shows each part as it comes, and the bar at 100% when it ends."""
    page.call("count", n=5, interval=0.05)
    assert page.result() == "5"  # a streamed call answers the number of parts pushed
    assert [li.text for li in page.driver.find_elements(By.CSS_SELECTOR, "#parts li")] == ["1", "2", "3", "4", "5"]
    bar = page.find("#progress")
    assert bar.is_displayed()
    assert float(bar.get_property("value")) == float(bar.get_property("max")) > 0
    assert page.text("#progress-text") == "done: 5 parts"


def test_a_tool_that_reports_progress_moves_the_bar(page: Page) -> None:
    """long_task's reports reach the page: the last one, step 10 of 10, is shown with the bar full."""
    page.call("long_task", seconds=0.2)
    page.result()
    assert page.text("#progress-text") == "10 of 10: step 10 of 10"
    bar = page.find("#progress")
    assert float(bar.get_property("value")) == float(bar.get_property("max"))


def test_cancel_stops_a_call_and_shows_32800(page: Page) -> None:
    """Cancel on a running sleep sends rpc.cancel; the call answers -32800, shown as the error."""
    page.call("sleep", seconds=10)
    page.wait_for(lambda: page.find("#cancel").is_enabled(), "the cancel button")
    page.find("#cancel").click()
    assert page.error_code() == "-32800"
    assert page.text("#error-message") == "Request cancelled"
    assert page.find("#call").is_enabled()


def test_the_raw_panel_shows_the_messages_sent_and_received(page: Page) -> None:
    """The discover request, a call and their answers appear in the raw panel, sent and received marked apart."""
    page.call("multiply", a=6, b=7)
    page.result()
    sent = [li.text for li in page.driver.find_elements(By.CSS_SELECTOR, "#raw li.sent")]
    received = [li.text for li in page.driver.find_elements(By.CSS_SELECTOR, "#raw li.received")]
    assert any('"method":"rpc.discover"' in text for text in sent)
    folded = page.find("#raw li.received details summary")  # the long document, folded
    assert folded is not None and folded.text.startswith('{"jsonrpc":"2.0","result":{"openrpc":"1.3.2"')
    assert any('"method":"multiply","id":2,"params":{"a":6,"b":7}' in text for text in sent)
    assert any(text == '{"jsonrpc":"2.0","result":42,"id":2}' for text in received)


def test_a_topic_can_be_subscribed_to_with_a_live_event_log(page: Page) -> None:
    """Subscribing to clock every 0.05 s fills the event log; unsubscribing ends it."""
    page.find('button[data-topic="clock"]').click()
    page.wait_for(lambda: page.text("#topic-name") == "clock", "the clock's form")
    page.find("#topic-interval").send_keys("0.05")
    page.find("#subscribe").click()
    page.wait_for(lambda: len(page.driver.find_elements(By.CSS_SELECTOR, "#events li")) >= 3, "three ticks")
    first = page.driver.find_elements(By.CSS_SELECTOR, "#events li")[0].text
    assert first.startswith("clock #") and '"tick":1' in first
    page.find("#subscriptions button").click()
    page.wait_for(lambda: not page.driver.find_elements(By.CSS_SELECTOR, "#subscriptions li"), "the unsubscribe")


def test_an_access_token_goes_in_the_query_of_the_socket(page: Page, served: tuple[str, list[str]]) -> None:
    """A token typed in reconnects with ?access_token=..., and the tools are listed again."""
    _, queries = served
    page.find("#token").send_keys("s3cret t0ken")
    page.find("#connect").click()
    page.wait_for(lambda: "access_token=s3cret%20t0ken" in queries, "the upgrade with the token")
    page.wait_for(lambda: page.text("#status").startswith("connected"), "the new connection")
    page.wait_for(lambda: page.find('button[data-tool="multiply"]'), "the tool list")
    assert "s3cret" not in page.text("#status")


def test_a_screenshot_of_the_playground(page: Page, tmp_path: Path) -> None:
    """A screenshot after a stream is a PNG of the window; UPDATE_SCREENSHOTS=1 saves it as docs/playground.png."""
    page.call("multiply", a=3, b=4)
    assert page.result() == "12"
    page.call("count", n=6, interval=0.02)
    assert page.result() == "6"
    target = DOCS / "playground.png" if os.environ.get("UPDATE_SCREENSHOTS") == "1" else tmp_path / "playground.png"
    assert page.driver.save_screenshot(str(target))
    data = target.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    assert width >= 1000 and height >= 600
