"""A headless Chromium for the console's browser tests (selenium and the system's browser).

Never downloads a browser: it uses Debian's ``chromium`` and ``chromium-driver`` (or the
paths in ``PORTFOLIO_CORE_CHROMIUM`` / ``PORTFOLIO_CORE_CHROMEDRIVER``) and skips, saying
why, when they are not installed.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import pytest

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
)
SCREENSHOTS = Path(__file__).resolve().parents[2] / "build" / "screenshots"


def chromium(window: tuple[int, int] = (1366, 900)) -> tuple[Any, Path]:
    """A new Chromium session with a fresh profile, and that profile's folder (remove it
    after ``quit()``); skips the test when no browser is installed."""
    browser = os.environ.get("PORTFOLIO_CORE_CHROMIUM") or shutil.which("chromium")
    driver_path = os.environ.get("PORTFOLIO_CORE_CHROMEDRIVER") or shutil.which("chromedriver")
    if not browser or not driver_path:
        pytest.skip(
            "no headless browser: install Debian's chromium and chromium-driver "
            "(apt-get install -y chromium chromium-driver)"
        )
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed")
    from selenium.webdriver.chrome.service import Service

    profile = Path(tempfile.mkdtemp(prefix="console-chromium-"))
    options = webdriver.ChromeOptions()
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile}")
    options.add_argument(f"--window-size={window[0]},{window[1]}")
    options.binary_location = browser
    os.environ.setdefault("SE_OFFLINE", "true")  # selenium manager: never fetch anything
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    driver.set_page_load_timeout(20)
    return driver, profile
