"""Headless Chromium through selenium, for the report's browser tests and its render benchmark.

Uses the system browser and driver (Debian's `chromium` and `chromium-driver`:
/usr/bin/chromium, /usr/bin/chromedriver); nothing is downloaded at run time.
selenium is a development dependency (the `dev` extra).
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from kernelwright.tools.errors import ToolUnavailable

DRIVER_PATHS = ("/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver")
BROWSER_PATHS = ("/usr/bin/chromium", "/usr/bin/chromium-browser")


def _first(env_name: str, paths: tuple[str, ...], which: str) -> str:
    found = os.environ.get(env_name) or next((p for p in paths if Path(p).exists()), None) or shutil.which(which)
    if not found:
        raise ToolUnavailable(f"{which} not found (looked at {', '.join(paths)}); on Debian: "
                              "apt-get install chromium chromium-driver", where="browser")
    return found


@contextmanager
def headless_chromium(width: int = 1280, height: int = 1600) -> Iterator[Any]:
    """A selenium Chrome driver on the system Chromium, browser console logs enabled."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = _first("KERNELWRIGHT_CHROMIUM", BROWSER_PATHS, "chromium")
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 f"--window-size={width},{height}", "--disable-extensions", "--no-first-run"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    service = Service(executable_path=_first("KERNELWRIGHT_CHROMEDRIVER", DRIVER_PATHS, "chromedriver"))
    driver = webdriver.Chrome(service=service, options=options)
    try:
        yield driver
    finally:
        driver.quit()


def open_and_wait_rendered(driver: Any, page: Path, timeout_s: float = 30.0) -> float:
    """Load a report and wait for its render mark; the mark's time (ms after navigation start)."""
    driver.get(Path(page).resolve().as_uri())
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        mark = driver.execute_script("return window.kwRenderedMs || null;")
        if mark is not None:
            return float(mark)
        time.sleep(0.02)
    raise TimeoutError(f"{page} did not render within {timeout_s} s")
