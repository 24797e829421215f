"""Storefront and account pages on a 390 px phone: nothing is wider than the screen."""

from __future__ import annotations

import pytest
from django.urls import reverse

from catalog.demo import load_demo
from catalog.models import Package
from payments.services import payment_record
from subscriptions.ordering import order_place

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PHONE_WIDTH = 390
DESKTOP_WIDTH = 1280


def screen(browser, width: int):
    context = browser.new_context(
        viewport={"width": width, "height": 844}, is_mobile=width == PHONE_WIDTH
    )
    page = context.new_page()
    page.set_default_timeout(10_000)
    return context, page


@pytest.fixture
def phone(browser):
    context, page = screen(browser, PHONE_WIDTH)
    yield page
    context.close()


@pytest.fixture
def bought(customer):
    """The demo store, and a customer with a paid order, its service and its invoice."""
    load_demo()
    package = Package.objects.get(name="VPS S")
    order = order_place(
        customer=customer,
        package=package,
        price=package.prices.get(name="Monthly"),
        variant_options=[package.variants.get().options.first()],
        quantity=1,
        currency="USD",
        checkout_fields={"label": "a-rather-long-server-label-for-a-small-screen"},
    )
    invoice = order.invoices.get()
    payment_record(method="bank_transfer", invoice=invoice, amount=invoice.total)
    return order


def store_pages() -> list[str]:
    meet = Package.objects.get(name="Meet Premium")
    return [
        reverse("storefront:index"),
        reverse("storefront:catalog", args=["video"]),
        reverse("storefront:catalog", args=["vps"]),
        reverse("storefront:package", args=["video", meet.slug]),
        reverse("storefront:package", args=["vps", "vps-s"]),
        reverse("signup"),
        reverse("login"),
    ]


def account_pages(order) -> list[str]:
    # The account overview holds the customer's orders, services and invoices lists.
    return [
        reverse("subscriptions:checkout", args=["vps", "vps-s"]),
        reverse("subscriptions:account"),
        reverse("subscriptions:order", args=[order.pk]),
        reverse("subscriptions:service", args=[order.services.get().pk]),
        reverse("payments:invoice", args=[order.invoices.get().pk]),
    ]


def log_in(page, base_url: str) -> None:
    page.goto(base_url + reverse("login"))
    page.fill("#id_username", "ann@example.com")
    page.fill("#id_password", "ann-password-1")
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(f"{base_url}{reverse('subscriptions:account')}")


def page_widths(page, base_url: str, order) -> dict[str, int]:
    widths = {}
    for path in store_pages():
        page.goto(base_url + path)
        widths[path] = page.evaluate("document.documentElement.scrollWidth")
    log_in(page, base_url)
    for path in account_pages(order):
        page.goto(base_url + path)
        widths[path] = page.evaluate("document.documentElement.scrollWidth")
    return widths


@pytest.mark.parametrize("width", [PHONE_WIDTH, DESKTOP_WIDTH])
def test_no_storefront_or_account_page_scrolls_sideways(browser, live_server, bought, width):
    context, page = screen(browser, width)
    try:
        widths = page_widths(page, live_server.url, bought)
    finally:
        context.close()

    assert len(widths) == 12
    assert {path: px for path, px in widths.items() if px > width} == {}


def test_the_account_tables_fit_the_phone_without_scrolling_their_box(phone, live_server, bought):
    log_in(phone, live_server.url)
    for path in account_pages(bought):
        phone.goto(live_server.url + path)
        boxes = phone.locator(".table-scroll")
        overflowing = boxes.evaluate_all(
            "boxes => boxes.filter(box => box.scrollWidth > box.clientWidth).length"
        )
        assert overflowing == 0, path


def test_the_comparison_scrolls_in_its_own_box_with_the_feature_names_pinned(
    phone, live_server, bought
):
    phone.goto(live_server.url + reverse("storefront:catalog", args=["video"]))
    box = phone.locator(".table-scroll:has(table.comparison)")
    assert box.evaluate("box => box.scrollWidth > box.clientWidth")
    feature_name = box.locator("tbody th").first
    before = feature_name.bounding_box()["x"]

    box.evaluate("box => { box.scrollLeft = 300; }")

    assert box.evaluate("box => box.scrollLeft") == 300
    assert feature_name.bounding_box()["x"] == before
    assert feature_name.is_visible()


def test_log_out_in_the_header_looks_like_the_links_beside_it(phone, live_server, bought):
    log_in(phone, live_server.url)
    nav = phone.locator(".site-nav")
    style = """el => {
        const s = getComputedStyle(el);
        return [s.color, s.backgroundColor, s.borderTopWidth, s.textDecorationLine, s.fontSize];
    }"""
    log_out = nav.get_by_role("button", name="Log out")
    account_link = nav.get_by_role("link", name="My account")

    assert log_out.evaluate(style) == account_link.evaluate(style)

    log_out.click()
    phone.wait_for_load_state()
    assert phone.locator(".site-nav").get_by_role("link", name="Log in").is_visible()
