"""Helpers for the Chromium tests: logging in, screen sizes, Content-Security-Policy reports."""

from __future__ import annotations

from django.urls import reverse

PHONE_WIDTH = 390
DESKTOP_WIDTH = 1280

_REPORT_VIOLATIONS = """
document.addEventListener("securitypolicyviolation", (event) => {
  window.reportCspViolation(`${event.violatedDirective} ${event.blockedURI}`);
});
"""


def screen(browser, width: int):
    """A fresh browser context and page at `width` px (a phone at 390)."""
    context = browser.new_context(
        viewport={"width": width, "height": 844}, is_mobile=width == PHONE_WIDTH
    )
    page = context.new_page()
    page.set_default_timeout(10_000)
    return context, page


def watch_csp(page) -> list[str]:
    """Every CSP violation the page meets from now on, on every page it opens."""
    violations: list[str] = []
    page.expose_function("reportCspViolation", lambda text: violations.append(text))
    page.add_init_script(_REPORT_VIOLATIONS)
    page.on(
        "console",
        lambda message: (
            "Content Security Policy" in message.text and violations.append(message.text)
        ),
    )
    return violations


def log_in(page, base_url: str, email: str, password: str) -> None:
    page.goto(base_url + reverse("login"))
    page.fill("#id_username", email)
    page.fill("#id_password", password)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(f"{base_url}{reverse('subscriptions:account')}")


def scroll_width(page) -> int:
    return page.evaluate("document.documentElement.scrollWidth")
