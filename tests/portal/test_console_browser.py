"""The operator console in a real browser.

A demo-like wiring (the demo's providers, a cache, an event store) is served by uvicorn on
127.0.0.1, behind a loopback proxy the test can cut; one headless Chromium (Debian's
``chromium`` + ``chromium-driver``, driven by selenium) opens ``/console`` through it for the
whole module. Screenshots of the main views are written to ``build/screenshots/``.
"""

from __future__ import annotations

import os
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from portfolio_core.boundary.timeline import default_timeline
from portfolio_core.portal import PortalConfig
from tests.portal.browser import SCREENSHOTS, chromium
from tests.portal.console_site import Site

SOAK_SECONDS = float(os.environ.get("PORTFOLIO_CORE_CONSOLE_SOAK_SECONDS", "20"))
"""How long the memory test keeps the page open (a manual run uses 600)."""
HOSTILE = '<img src=x onerror="window.__pwned=1"><script>window.__pwned=1</script>'
READ_KEY = "read-only-key-0123456789"
WRITE_KEY = "write-key-0123456789abcdef"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    default_timeline().clear()
    config = PortalConfig(
        console={"interval": 0.1, "history": 60, "tail": 30, "timeline": 60, "health_interval": 1}
    )
    site = Site(tmp_path_factory.mktemp("console"), config)
    yield site
    site.close()


@pytest.fixture(scope="module")
def browser(request: pytest.FixtureRequest) -> Iterator[Any]:
    driver, profile = chromium()
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    yield driver
    driver.quit()
    shutil.rmtree(profile, ignore_errors=True)
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(f"console screenshots: {SCREENSHOTS}")


def wait(condition: Callable[[], Any], timeout: float, what: str) -> Any:
    """Poll ``condition`` every 20 ms until it returns something true."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s: {what}")
        time.sleep(0.02)


def text_of(browser: Any, css: str) -> str:
    return str(
        browser.execute_script(
            "return [...document.querySelectorAll(arguments[0])].map(e => e.textContent)"
            ".join('\\n')",
            css,
        )
    )


def live(browser: Any) -> bool:
    state = browser.execute_script("return document.getElementById('connection').dataset.state")
    return bool(state == "live")


def open_console(browser: Any, site: Site) -> None:
    browser.get(site.base + "/console")
    wait(lambda: live(browser), 10, "the console connected")


def tab(browser: Any, name: str) -> None:
    browser.find_element("id", f"tab-{name}").click()


def shot(browser: Any, name: str) -> None:
    browser.save_screenshot(str(SCREENSHOTS / f"{name}.png"))


def test_the_overview_lists_every_entry_with_where_it_was_configured(
    site: Site, browser: Any
) -> None:
    open_console(browser, site)
    rows = wait(
        lambda: browser.execute_script(
            "return [...document.querySelectorAll('#entries tbody tr')]"
            ".map(r => [r.dataset.entry, r.textContent])"
        ),
        5,
        "entries shown",
    )
    assert [name for name, _ in rows] == site.registry.names()
    for name, text in rows:
        location = site.registry.metadata(name).location
        assert location.startswith(str(site.manifest)) or "manifest.yaml:" in location
        assert location in text
    flaky = dict(rows)["flaky"]
    assert "llm.streaming" in flaky  # capabilities
    assert "circuit breaker" in flaky  # what the boundary adds
    assert browser.find_element("id", "banner").is_displayed() is False
    shot(browser, "overview")


def test_an_opening_breaker_shows_in_the_overview_and_timeline_within_2s(
    site: Site, browser: Any
) -> None:
    open_console(browser, site)
    browser.execute_script("window.__sameDocument = 42")
    assert site.call_flaky() == 503
    assert site.call_flaky() == 503  # fail_max 2: the breaker opens now
    opened = time.monotonic()
    wait(
        lambda: browser.execute_script(
            "const b = document.querySelector('tr[data-entry=flaky] [data-breaker-state]');"
            "return b && b.dataset.breakerState === 'open'"
        ),
        2,
        "the flaky entry's breaker shown open",
    )
    wait(lambda: "flaky" in text_of(browser, "#banner"), 2, "the degraded banner")
    wait(
        lambda: "closed -> open" in text_of(browser, "#timeline li[data-kind=breaker]"),
        2,
        "the breaker transition in the timeline",
    )
    assert time.monotonic() - opened < 2.0
    assert browser.execute_script("return window.__sameDocument") == 42  # no reload
    assert "refuses calls until" in text_of(browser, "tr[data-entry=flaky]")
    assert site.call_flaky() == 503  # refused by the open breaker
    wait(
        lambda: "circuit open" in text_of(browser, "#timeline li[data-kind=rejection]"),
        2,
        "the refusal in the timeline",
    )
    shot(browser, "overview-degraded")
    tab(browser, "timeline")
    shot(browser, "timeline")
    tab(browser, "methods")
    wait(lambda: text_of(browser, "tr[data-method='flaky.complete']"), 2, "flaky.complete row")
    shot(browser, "methods")


def test_a_breaker_is_reset_only_after_confirmation(site: Site, browser: Any) -> None:
    open_console(browser, site)
    assert site.call_flaky() == 503
    assert site.call_flaky() == 503
    button = wait(
        lambda: browser.find_elements("css selector", "tr[data-entry=flaky] button"),
        2,
        "a reset button",
    )[0]
    button.click()
    dialog = browser.find_element("id", "confirm")
    assert dialog.is_displayed()
    assert "flaky" in dialog.text
    browser.find_element("css selector", "#confirm button[value=cancel]").click()
    time.sleep(0.3)
    assert text_of(browser, "tr[data-entry=flaky] [data-breaker-state]") == "open"
    browser.find_elements("css selector", "tr[data-entry=flaky] button")[0].click()
    browser.find_element("id", "confirm-ok").click()
    wait(
        lambda: text_of(browser, "tr[data-entry=flaky] [data-breaker-state]") == "closed",
        2,
        "the breaker closed",
    )
    wait(
        lambda: "reset the circuit breaker" in text_of(browser, "#timeline li[data-kind=console]"),
        2,
        "the action in the timeline",
    )


def test_event_payloads_are_text_secrets_are_masked_and_big_ones_are_cut(
    site: Site, browser: Any
) -> None:
    open_console(browser, site)
    tab(browser, "events")
    site.append("orders-1", "Hostile", {"html": HOSTILE, "password": "hunter2-secret"})
    site.append("orders-2", "Huge", {"blob": "x" * 5_000_000})
    items = wait(
        lambda: browser.find_elements("css selector", "#events li[data-type=Huge]"),
        3,
        "the huge event shown",
    )
    hostile = browser.find_element("css selector", "#events li[data-type=Hostile] pre")
    assert HOSTILE.replace('"', '\\"') in hostile.text  # shown as text, JSON-escaped
    assert not browser.find_elements("css selector", "#events img, #events script")
    assert browser.execute_script("return window.__pwned") is None
    assert "hunter2-secret" not in browser.page_source
    assert "**********" in hostile.text
    huge = items[0]
    note = huge.find_element("css selector", ".cut").text
    assert note == "Payload cut: showing 16.4 kB of 5.0 MB."
    assert len(huge.find_element("css selector", "pre").get_attribute("textContent")) <= 16_384
    shot(browser, "events")
    # filtering by type fetches the latest matching events
    browser.find_element("id", "event-type").send_keys("Hostile")
    browser.find_element("css selector", "#event-filters button[type=submit]").click()
    wait(
        lambda: (
            browser.execute_script(
                "return [...document.querySelectorAll('#events li')].map(l => l.dataset.type)"
            )
            == ["Hostile"]
        ),
        3,
        "only the Hostile event listed",
    )
    browser.find_element("id", "event-type").clear()


def test_a_cut_connection_is_shown_and_the_page_recovers(site: Site, browser: Any) -> None:
    open_console(browser, site)
    site.proxy.cut()  # live connections reset, new ones refused
    try:
        wait(
            lambda: "Connection lost" in text_of(browser, "#connection"),
            3,
            "the page saying the connection is lost",
        )
        time.sleep(1.0)
        assert not live(browser)  # still refused: not pretending to be live
    finally:
        site.proxy.restore()
    wait(lambda: live(browser), 8, "the page live again")
    assert "reconnected" in text_of(browser, "#connection")
    # and it is really live again: a new timeline event shows up
    default_timeline().publish("test.marker", "after the reconnection")
    wait(
        lambda: "after the reconnection" in text_of(browser, "#timeline"),
        2,
        "an update after reconnecting",
    )


def test_tabs_work_from_the_keyboard_and_every_control_is_labelled(
    site: Site, browser: Any
) -> None:
    from selenium.webdriver.common.keys import Keys

    open_console(browser, site)
    overview = browser.find_element("id", "tab-overview")
    overview.click()
    overview.send_keys(Keys.ARROW_RIGHT)
    focused = browser.switch_to.active_element
    assert focused.get_attribute("id") == "tab-methods"
    assert focused.get_attribute("aria-selected") == "true"
    assert browser.find_element("id", "view-methods").is_displayed()
    focused.send_keys(Keys.END)
    last = browser.execute_script(
        "return [...document.querySelectorAll('[role=tab]')].filter(t => !t.hidden).pop().id"
    )
    assert browser.switch_to.active_element.get_attribute("id") == last
    browser.switch_to.active_element.send_keys(Keys.HOME)
    assert browser.switch_to.active_element.get_attribute("id") == "tab-overview"
    unlabelled = browser.execute_script(
        "return [...document.querySelectorAll('input, select')]"
        ".filter(e => !document.querySelector('label[for=\"' + e.id + '\"]')).map(e => e.id)"
    )
    assert unlabelled == []
    nameless = browser.execute_script(
        "return [...document.querySelectorAll('button')]"
        ".filter(b => !(b.textContent.trim() || b.getAttribute('aria-label'))).length"
    )
    assert nameless == 0
    charts = browser.execute_script(
        "return [...document.querySelectorAll('svg.chart')]"
        ".every(s => s.getAttribute('aria-label'))"
    )
    assert charts is True


def test_phone_sized_and_dark_layouts(site: Site, browser: Any) -> None:
    browser.set_window_size(390, 844)
    browser.execute_cdp_cmd(
        "Emulation.setEmulatedMedia",
        {"features": [{"name": "prefers-color-scheme", "value": "dark"}]},
    )
    try:
        open_console(browser, site)
        display = browser.execute_script(
            "return getComputedStyle(document.querySelector('#entries tbody td')).display"
        )
        assert display == "grid"  # each row is a card with labelled cells
        background = browser.execute_script(
            "return getComputedStyle(document.body).backgroundColor"
        )
        red, green, blue = (int(x) for x in background[4:-1].split(",")[:3])
        assert red + green + blue < 120  # dark
        assert browser.execute_script("return document.documentElement.scrollWidth") <= 400
        shot(browser, "overview-phone-dark")
    finally:
        browser.execute_cdp_cmd("Emulation.setEmulatedMedia", {"features": []})
        browser.set_window_size(1366, 900)


def test_the_manifest_diff_of_a_reload_shows_in_the_timeline(site: Site, browser: Any) -> None:
    open_console(browser, site)
    text = site.manifest.read_text()
    site.manifest.write_text(text.replace("reset_timeout: 60", "reset_timeout: 45"))
    browser.find_element("id", "reload").click()
    browser.find_element("id", "confirm-ok").click()
    wait(
        lambda: (
            "protection.circuit_breaker.reset_timeout: 60 → 45"
            in text_of(browser, "#timeline li[data-kind=reload] .diff")
        ),
        5,
        "the reload's diff in the timeline",
    )
    tab(browser, "timeline")
    shot(browser, "timeline-reload")


def test_a_config_change_and_a_dead_letter_show_within_2s(site: Site, browser: Any) -> None:
    open_console(browser, site)
    browser.execute_script("window.__sameDocument = 7")
    version = site.apply_config(
        {"flags.checkout-v2": {"enabled": True}, "app.timeout": 2.5},
        author="ops",
        reason="enable the new checkout",
    )
    applied = time.monotonic()
    wait(
        lambda: (
            f"version {version} by ops"
            in text_of(browser, "#timeline li[data-kind='config.version']")
        ),
        2,
        "the config version in the timeline",
    )
    wait(
        lambda: "checkout-v2" in text_of(browser, "#timeline li[data-kind='flags.change']"),
        2,
        "the flag change in the timeline",
    )
    wait(
        lambda: "enable the new checkout" in text_of(browser, "[data-panel='config:settings']"),
        2,
        "the version in the settings panel",
    )
    assert time.monotonic() - applied < 2.0
    site.dead_letter("mail", "send-receipt", "smtp refused: 550 mailbox unavailable")
    failed = time.monotonic()
    wait(
        lambda: (
            "jobs/mail: 1 job dead-lettered"
            in text_of(browser, "#timeline li[data-kind='jobs.dead_letter']")
        ),
        2,
        "the dead letter in the timeline",
    )
    wait(
        lambda: "warning" in text_of(browser, "[data-panel='jobs:jobs'] .badge"),
        2,
        "the jobs panel flagged",
    )
    assert time.monotonic() - failed < 2.0
    assert "smtp refused" in text_of(browser, "#timeline li[data-kind='jobs.dead_letter']")
    assert browser.execute_script("return window.__sameDocument") == 7  # no reload
    tab(browser, "panels")
    shot(browser, "panels-config-jobs")
    tab(browser, "timeline")
    shot(browser, "timeline-config-jobs")


def test_memory_stays_flat_while_the_page_is_left_open(site: Site, browser: Any) -> None:
    """Fast updates (every 0.1 s) with steady traffic: refusals, events and timeline
    entries. The JS heap after a garbage collection must not grow once the page's bounded
    lists are full."""
    open_console(browser, site)
    tab(browser, "methods")  # the view that redraws the most (charts)
    stop = threading.Event()

    def traffic() -> None:
        n = 0
        while not stop.is_set():
            n += 1
            site.call_flaky()
            site.append(f"soak-{n % 7}", "Tick", {"n": n, "text": "x" * 200})
            default_timeline().publish("test.soak", f"soak event {n}")
            stop.wait(0.05)

    worker = threading.Thread(target=traffic, daemon=True)
    worker.start()

    def heap() -> float:
        browser.execute_cdp_cmd("HeapProfiler.collectGarbage", {})
        return float(browser.execute_cdp_cmd("Runtime.getHeapUsage", {})["usedSize"])

    try:
        time.sleep(min(8.0, SOAK_SECONDS / 3))  # the page's lists fill up
        before = heap()
        time.sleep(SOAK_SECONDS)
        after = heap()
        assert live(browser)
    finally:
        stop.set()
        worker.join(5)
    growth = after - before
    reporter_line = (
        f"console JS heap: {before / 1e6:.2f} MB -> {after / 1e6:.2f} MB "
        f"after {SOAK_SECONDS:.0f} s ({growth / 1e3:+.0f} KB)"
    )
    print(reporter_line)
    assert growth < max(1_000_000, 0.10 * before), reporter_line


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    config = PortalConfig(
        auth={
            "keys": [
                {"name": "viewer", "secret": READ_KEY, "scopes": [{"access": "read"}]},
                {"name": "operator", "secret": WRITE_KEY},
            ]
        },
        console={"interval": 0.2},
    )
    site = Site(tmp_path_factory.mktemp("guarded"), config, key=WRITE_KEY)
    yield site
    site.close()


def test_without_a_key_the_browser_gets_the_login_and_no_data(guarded: Site, browser: Any) -> None:
    browser.delete_all_cookies()
    browser.get(guarded.base + "/console")
    assert browser.find_element("id", "key").get_attribute("type") == "password"
    for name in guarded.registry.names():
        assert f">{name}<" not in browser.page_source
    shot(browser, "login")
    browser.find_element("id", "key").send_keys("not-a-valid-key-000000")
    browser.find_element("css selector", "form button[type=submit]").click()
    assert "not valid" in browser.find_element("css selector", ".login-error").text
    browser.find_element("id", "key").send_keys(READ_KEY)
    browser.find_element("css selector", "form button[type=submit]").click()
    wait(lambda: live(browser), 10, "the console live after logging in")
    assert "viewer" in text_of(browser, "#who")
    assert browser.find_element("id", "reload").is_displayed() is False  # read-only
    assert guarded.call_flaky() == 503
    assert guarded.call_flaky() == 503
    wait(
        lambda: text_of(browser, "tr[data-entry=flaky] [data-breaker-state]") == "open",
        2,
        "the breaker open",
    )
    assert not browser.find_elements("css selector", "tr[data-entry=flaky] button")
    browser.find_element("css selector", "#logout button").click()
    wait(lambda: browser.find_elements("id", "key"), 5, "the login page after logging out")
