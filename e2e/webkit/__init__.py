"""WebKitGTK for the end-to-end suite: Debian's WebKitWebDriver + MiniBrowser under an Xvfb
of our own, driven by Selenium, behind the small slice of Playwright's page API the tests
use (see driver.py)."""

from e2e.webkit.driver import WebKitBrowser, webkit_version

__all__ = ["WebKitBrowser", "webkit_version"]
