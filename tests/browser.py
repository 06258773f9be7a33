"""Headless Chromium for the tests that look at pages as a shop owner does: at a phone and a desktop width.

Modules that need it import the ``browser`` fixture from here; it skips (naming the Debian package
to install) when Chromium, its driver or selenium are missing.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
WIDTHS = (375, 800)


def _missing_browser() -> str | None:
    for path, package in ((CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")):
        if not Path(path).exists():
            return f"{path} not found: install the Debian package {package} (bash scripts/system-deps.sh)"
    return None


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    missing = _missing_browser()
    if missing:
        pytest.skip(missing)
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is a dev dependency: pip install -e .[dev]")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--no-first-run", "--hide-scrollbars",
                 # offline for certain: no host name resolves (the e-mails' logo and links name shop.example), so a
                 # machine whose resolver does not answer cannot hold each page for Chromium's DNS timeout
                 "--host-resolver-rules=MAP * ~NOTFOUND",
                 f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


def set_viewport(driver: Any, width: int) -> None:
    """An exact CSS viewport (a window size would include the browser's own frame), phone-like below 600 px."""
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
        "width": width, "height": 900, "deviceScaleFactor": 1, "mobile": width < 600,
    })


def page_width(driver: Any) -> int:
    """``scrollWidth`` of the page shown: wider than the viewport set, the page scrolls sideways.

    Compared with the width set, not with ``innerWidth``: a phone (mobile emulation) widens its
    layout viewport to fit a page that is too wide, so ``innerWidth`` grows with the fault.
    """
    return int(driver.execute_script("return document.documentElement.scrollWidth;"))
