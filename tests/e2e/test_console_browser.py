"""The staff console in headless Chromium (Debian's chromium and chromium-driver, driven by
Selenium) against gunicorn, on data made by real signed SMS payments: sign in, find a
transaction by phone, read its timeline, approve a flagged payment, see the dashboard's charts,
and keep a screenshot of the dashboard in test-artifacts/dashboard.png.

Without Chromium the test is skipped, except in CI (CI or SMSPAY_TEST_REQUIRE_BROWSER set: .ci/run
installs the browser with `make browser-deps`), where it fails instead.
"""

from __future__ import annotations

import base64
import os
import shutil
import time
from collections.abc import Iterator
from decimal import Decimal

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

from sms.instructions import format_pay
from tests.e2e.conftest import ROOT, Server
from tests.e2e.test_concurrency import post, provision

pytestmark = pytest.mark.e2e

CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")
ARTIFACTS = ROOT / "test-artifacts"
PASSWORD = "browser test password"
PAYER, PAYEE = "+919700000101", "+919700000102"
HOME = (Decimal("12.9716"), Decimal("77.5946"))  # Bengaluru
FAR = (Decimal("13.4213"), Decimal("77.5946"))  # 50 km due north
CHROMIUM_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage", "--window-size=1400,1100",
)  # fmt: skip
WAIT = 20  # seconds for a page or a chart


def need_browser() -> None:
    """Skip without Chromium, or fail where the browser is required (CI)."""
    if CHROMIUM and DRIVER:
        return
    reason = "Debian's chromium and chromium-driver are not installed (run `make browser-deps`)"
    if os.environ.get("SMSPAY_TEST_REQUIRE_BROWSER") or os.environ.get("CI"):
        pytest.fail(reason + " (required in CI and with SMSPAY_TEST_REQUIRE_BROWSER)")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebDriver]:
    """A fresh headless Chromium profile; closed at the end of the module."""
    need_browser()
    options = Options()
    options.binary_location = str(CHROMIUM)
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}")
    driver = webdriver.Chrome(service=Service(executable_path=str(DRIVER)), options=options)
    driver.set_page_load_timeout(WAIT)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture(scope="module")
def shop(server: Server, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """An admin, two users who paid each other by SMS through both routes, and a payment the
    geofence held (50 km from where the payer usually pays)."""
    tmp = tmp_path_factory.mktemp("console-phones")
    server.cli("staff", "add", "--name", "ada", "--role", "admin")
    server.cli("staff", "password", "--name", "ada", "--password", PASSWORD)
    secret = server.cli("gateways", "add-tasker", "--id", "console-phone").strip().splitlines()[-1]
    gateway = ("console-phone", secret)
    payer = provision(server, tmp, PAYER, "1234", 1000)
    payee = provision(server, tmp, PAYEE, "4321", 0)
    paid = post(server, gateway, "twilio", PAYER, payer.pay(PAYEE, 25_000))
    assert "Paid Rs 250.00" in paid, paid
    back = post(server, gateway, "tasker", PAYEE, payee.pay(PAYER, 5_000))
    assert "Paid Rs 50.00" in back, back
    refused = post(server, gateway, "tasker", PAYEE, payee.pay(PAYER, 900_000))
    assert "not enough balance" in refused, refused
    for _ in range(3):  # the payer's usual area: three payments at home
        home = payer.seal(format_pay(PAYEE, 1_000, "1234", int(time.time()), "", HOME))
        assert "Paid Rs 10.00" in post(server, gateway, "twilio", PAYER, home)
    far = payer.seal(format_pay(PAYEE, 12_300, "1234", int(time.time()), "", FAR))
    held = post(server, gateway, "tasker", PAYER, far)  # 50 km away: the geofence holds it
    assert "is held for a security check" in held, held
    return {"paid": paid.split("Ref ")[1][:10], "held": held.split("Ref ")[1][:10]}


def wait_for(driver: WebDriver, css: str) -> WebElement:
    """The first element matching `css`, once it is there."""
    found: WebElement = WebDriverWait(driver, WAIT).until(
        ec.presence_of_element_located((By.CSS_SELECTOR, css))
    )
    return found


@pytest.mark.parametrize("server", ["sqlite"], indirect=True)
def test_support_flow_in_a_real_browser(
    browser: WebDriver, server: Server, shop: dict[str, str]
) -> None:
    driver = browser

    # sign in (the console sends us to the sign-in page first)
    driver.get(server.url + "/console/")
    wait_for(driver, "form#login")
    driver.find_element(By.NAME, "name").send_keys("ada")
    driver.find_element(By.NAME, "password").send_keys(PASSWORD)
    driver.find_element(By.ID, "sign-in").click()
    wait_for(driver, "#kpis")
    assert "ada" in driver.find_element(By.CSS_SELECTOR, ".who").text

    # find a transaction by phone: the list masks numbers
    box = driver.find_element(By.CSS_SELECTOR, "form.quick input[name=phone]")
    box.send_keys(PAYER)
    box.submit()
    wait_for(driver, "tr.txn")
    rows = driver.find_elements(By.CSS_SELECTOR, "table.list tr.txn")
    assert shop["paid"] in [r.get_attribute("data-reference") for r in rows]
    table = driver.find_element(By.CSS_SELECTOR, "table.list").text
    assert "+91******0101" in table and PAYER not in table

    # open its timeline: every step, numbers in full
    driver.find_element(By.LINK_TEXT, shop["paid"]).click()
    wait_for(driver, "ol#timeline li")
    timeline = driver.find_element(By.ID, "timeline").text
    assert f"SMS in from {PAYER} via twilio" in timeline
    assert "Ledger entry" in timeline and f"SMS out to {PAYEE}" in timeline
    assert "SUCCESS" in timeline and PAYEE in driver.find_element(By.ID, "summary").text
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "timeline.png").write_bytes(full_page_png(driver))

    # approve the flagged payment from the queue
    driver.find_element(By.LINK_TEXT, "Flagged").click()
    row = wait_for(driver, f"tr.txn[data-reference='{shop['held']}']")
    why = row.find_element(By.CSS_SELECTOR, "td.why").text
    assert "flag geofence: 50.0 km from the usual area" in why and "distance_km=50.0" in why
    form = row.find_element(By.CSS_SELECTOR, "form.approve")
    form.find_element(By.NAME, "reason").send_keys("payer confirmed by phone")
    form.find_element(By.CSS_SELECTOR, "button.approve").click()
    flash = wait_for(driver, ".flash.ok")
    assert f"{shop['held']} is now SUCCESS" in flash.text
    assert not driver.find_elements(By.CSS_SELECTOR, f"tr.txn[data-reference='{shop['held']}']")
    assert "SUCCESS" in server.cli("transactions", "show", shop["held"])
    # settled: 250 - 50 + 3 x 10 + 123
    assert "Rs 353.00" in server.cli("wallet", "balance", "--phone", PAYEE)

    # the dashboard's charts render (drawn by the page's own script), then a screenshot
    driver.find_element(By.LINK_TEXT, "Dashboard").click()
    for chart in ("volume", "amount", "failures", "channels"):
        wait_for(driver, f"#chart-{chart}[data-rendered='true'] svg rect")
    bars = driver.find_elements(By.CSS_SELECTOR, "#chart-volume svg rect")
    assert len(bars) >= 2  # today's successes and failures
    reasons = driver.find_element(By.ID, "chart-failures").text
    assert "insufficient_funds" in reasons
    assert int(driver.find_element(By.CSS_SELECTOR, "#kpis .kpi-count").text) >= 5
    errors = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
    assert errors == [], errors  # no script error, nothing the CSP refused
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "dashboard.png"
    shot.write_bytes(full_page_png(driver))
    assert shot.read_bytes().startswith(b"\x89PNG") and shot.stat().st_size > 10_000


def full_page_png(driver: WebDriver) -> bytes:
    """A screenshot of the whole page, not only the window (Chrome DevTools protocol)."""
    size = driver.execute_cdp_cmd("Page.getLayoutMetrics", {})["cssContentSize"]
    clip = {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1}
    shot = driver.execute_cdp_cmd(
        "Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True, "clip": clip}
    )
    return base64.b64decode(shot["data"])
