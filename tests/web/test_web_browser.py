"""Issue 17: the web page in a real headless Chromium (Debian's chromium + chromium-driver).

Selenium drives /usr/bin/chromium through /usr/bin/chromedriver; nothing is downloaded (Selenium
Manager is kept offline). Screenshots of every page go to $SHADOWVAULT_TEST_ARTIFACTS (else a
temporary directory) so a person can look at them.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from webserver import WebServer, artifacts_dir, own_address, start_web

from conftest import require
from statusfixtures import Scenario, make_scenario

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1200,1400",
)


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scenario]:
    yield make_scenario(tmp_path_factory.mktemp("browser"))


@pytest.fixture(scope="module")
def server(scenario: Scenario) -> Iterator[WebServer]:
    web = start_web(scenario)
    yield web
    web.stop()


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return artifacts_dir(tmp_path_factory.mktemp("screenshots"))


@pytest.fixture(scope="module")
def downloads(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("downloads")


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory, downloads: Path) -> Iterator[WebDriver]:
    require(
        os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER),
        "needs Debian's chromium and chromium-driver",
    )
    offline = os.environ.get("SE_OFFLINE")
    os.environ["SE_OFFLINE"] = "true"  # Selenium Manager must never fetch a driver or a browser
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}")
    options.add_experimental_option(
        "prefs", {"download.default_directory": str(downloads), "download.prompt_for_download": False}
    )
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.execute_cdp_cmd("Page.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)})
    yield driver
    driver.quit()
    if offline is None:
        del os.environ["SE_OFFLINE"]
    else:
        os.environ["SE_OFFLINE"] = offline


def snapshot_of(s: Scenario, set_name: str) -> str:
    snaps = json.loads(s.sv("snapshots", "--json").stdout)
    return str([x for x in snaps if set_name in x["tags"]][-1]["id"])


def test_overview_shows_the_sets_and_a_chart_with_one_point_per_run(
    browser: WebDriver, server: WebServer, scenario: Scenario, shots: Path
) -> None:
    browser.get(server.url + "/")
    browser.save_screenshot(str(shots / "overview.png"))
    sets = {e.get_attribute("data-set"): e for e in browser.find_elements(By.CSS_SELECTOR, "section.set")}
    assert list(sets) == ["docs", "db", "broken", "nightly"]
    assert sets["broken"].get_attribute("data-flagged") == "yes"
    assert "failed" in sets["broken"].find_element(By.CSS_SELECTOR, ".flag").text
    assert "never-run" in sets["nightly"].text
    assert str(scenario.held) in sets["docs"].text
    svg = sets["docs"].find_element(By.CSS_SELECTOR, "svg.chart")
    assert svg.size["width"] > 300 and svg.size["height"] > 100  # laid out, not an empty box
    for measure in ("duration", "bytes", "suspect", "failed"):
        points = svg.find_elements(By.CSS_SELECTOR, f'g[data-measure="{measure}"] circle.point')
        assert len(points) == scenario.runs_of_docs
        assert all(p.is_displayed() for p in points)
    # db and broken ran once each: one point per measure.
    assert len(sets["db"].find_elements(By.CSS_SELECTOR, 'g[data-measure="failed"] circle.point')) == 1


def test_session_page_shows_the_suspect_file_and_its_writer(
    browser: WebDriver, server: WebServer, scenario: Scenario, shots: Path
) -> None:
    browser.get(server.url + "/")
    section = browser.find_element(By.CSS_SELECTOR, 'section.set[data-set="docs"]')
    section.find_element(By.PARTIAL_LINK_TEXT, "session").click()
    browser.save_screenshot(str(shots / "session.png"))
    rows = browser.find_elements(By.CSS_SELECTOR, "table.files tr.file")
    suspect = [r for r in rows if r.get_attribute("data-class") == "suspect"]
    assert len(suspect) == 1
    assert str(scenario.held) in suspect[0].text
    writer = suspect[0].find_element(By.CSS_SELECTOR, "td.writer").text
    assert writer == f"{scenario.writer_command} (pid {scenario.writer_pid})"


def test_a_file_downloaded_from_the_browser_equals_the_original(
    browser: WebDriver, server: WebServer, scenario: Scenario, shots: Path, downloads: Path
) -> None:
    snap = snapshot_of(scenario, "docs")
    browser.get(f"{server.url}/snapshots")
    browser.find_element(By.CSS_SELECTOR, f'a[href="/snapshots/{snap}/browse"]').click()
    # Walk down the directories by clicking, as a person would.
    for part in [p for p in str(scenario.docs / "sub").split("/") if p]:
        browser.find_element(By.LINK_TEXT, part + "/").click()
    browser.save_screenshot(str(shots / "browse.png"))
    browser.find_element(By.LINK_TEXT, "deep.bin").click()
    target = downloads / "deep.bin"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not (target.exists() and not list(downloads.glob("*.crdownload"))):
        time.sleep(0.1)
    assert target.read_bytes() == (scenario.docs / "sub" / "deep.bin").read_bytes()


def test_odd_names_render_as_text(
    browser: WebDriver, server: WebServer, scenario: Scenario, shots: Path
) -> None:
    snap = snapshot_of(scenario, "docs")
    browser.get(f"{server.url}/snapshots/{snap}/browse?path={quote(str(scenario.docs))}")
    browser.save_screenshot(str(shots / "odd-names.png"))
    names = [a.text for a in browser.find_elements(By.CSS_SELECTOR, "a.file")]
    assert "<script>alert(1)<.txt" in names and "<img src=x onerror=alert(2)>" in names
    assert "bad\\xffname.txt" in names and "quote\"s'.txt" in names
    assert browser.find_elements(By.TAG_NAME, "script") == []
    assert browser.find_elements(By.CSS_SELECTOR, "main img") == []


def test_non_loopback_listener_refuses_the_browser_without_the_token(
    browser: WebDriver, scenario: Scenario, shots: Path, tmp_path: Path
) -> None:
    token = "Xb4nq8-Lr2Vt7Wc1Pz9Hs3Km"
    (tmp_path / "token").write_text(token + "\n")
    web = start_web(scenario, own_address(), "--token-file", str(tmp_path / "token"))
    try:
        browser.get(web.url + "/")
        browser.save_screenshot(str(shots / "refused.png"))
        body = browser.find_element(By.TAG_NAME, "body").text
        assert "token is required" in body and "docs" not in body
        browser.get(f"{web.url}/?token={token}")  # sets the cookie and drops the token from the address
        assert browser.current_url == web.url + "/"
        assert browser.find_elements(By.CSS_SELECTOR, 'section.set[data-set="docs"]')
        browser.get(web.url + "/snapshots")  # the cookie carries the token from now on
        assert browser.find_elements(By.CSS_SELECTOR, "table.snapshots a")
    finally:
        web.stop()
