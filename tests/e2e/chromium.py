"""Headless Chromium driven over WebDriver (Debian's chromium and chromedriver, Python's
selenium client) for the browser tests; screenshots go to target/screenshots/."""

import os
import shutil
import tempfile

from selenium import webdriver
from selenium.webdriver.chrome.service import Service

SCREENSHOTS = os.path.join(os.path.dirname(__file__), "..", "..", "target", "screenshots")


def chromium():
    """A fresh headless Chromium with an empty profile and no background networking (the
    machine's closed network refuses it)."""
    profile = tempfile.mkdtemp(prefix="chromium-e2e-")
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--window-size=1280,900",
                 f"--user-data-dir={profile}"):
        options.add_argument(flag)
    service = Service(shutil.which("chromedriver") or "/usr/bin/chromedriver")
    driver = webdriver.Chrome(options=options, service=service)
    driver.set_page_load_timeout(20)
    original_quit = driver.quit

    def quit():
        original_quit()
        shutil.rmtree(profile, ignore_errors=True)

    driver.quit = quit
    return driver


def screenshot(driver, name):
    os.makedirs(SCREENSHOTS, exist_ok=True)
    path = os.path.abspath(os.path.join(SCREENSHOTS, f"{name}.png"))
    driver.save_screenshot(path)
    return path


def page_text(driver):
    """The page's visible text, read in one script run: a page that a submitted form is
    replacing has no stale element to trip over (reading `body.text` through a found
    element raced with the navigation in CI)."""
    return driver.execute_script("return document.body ? document.body.innerText : ''")
