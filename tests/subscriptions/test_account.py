"""The customer account: billing details, email and password, closing the account."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
import time_machine
from django.contrib.auth import get_user_model
from django.urls import reverse
from django.utils import timezone

from subscriptions.billing import services_run_billing
from subscriptions.models import CustomerProfile, Invoice, Order, Service
from tests.factories import active_service, place, shop_package

pytestmark = pytest.mark.django_db

ACCOUNT_PAGES = [
    "subscriptions:account_profile",
    "subscriptions:account_email",
    "subscriptions:account_password",
    "subscriptions:account_close",
]


@pytest.mark.parametrize("name", ACCOUNT_PAGES)
def test_each_account_page_opens_for_the_customer(customer_client, name):
    response = customer_client.get(reverse(name))
    assert response.status_code == 200
    assert 'class="account-menu"' in response.content.decode()


@pytest.mark.parametrize("name", ACCOUNT_PAGES)
def test_each_account_page_asks_a_visitor_to_log_in(client, name):
    response = client.get(reverse(name))
    assert response.status_code == 302
    assert response.url.startswith(reverse("login"))


# --- billing details ----------------------------------------------------------------


PROFILE = {
    "name": "Ann Example",
    "company": "Example GmbH",
    "address": "Hauptstraße 1\n10115 Berlin",
    "country": "DE",
    "vat_id": "de 123.456.789",
}


def test_a_customer_saves_billing_details_which_the_page_shows_again(customer_client, customer):
    response = customer_client.post(reverse("subscriptions:account_profile"), PROFILE)

    assert response.status_code == 302
    profile = CustomerProfile.objects.get(customer=customer)
    assert (profile.name, profile.company, profile.country.code) == (
        "Ann Example",
        "Example GmbH",
        "DE",
    )
    assert profile.vat_id == "DE123456789"  # stored as tax authorities print it
    page = customer_client.get(reverse("subscriptions:account_profile")).content.decode()
    assert 'value="Example GmbH"' in page and '<option value="DE" selected>' in page


def test_an_unknown_country_is_refused_on_the_form(customer_client, customer):
    response = customer_client.post(
        reverse("subscriptions:account_profile"), {**PROFILE, "country": "XX"}
    )
    assert response.status_code == 200
    assert "Select a valid choice" in response.content.decode()
    assert not CustomerProfile.objects.exists()


def test_the_invoice_document_prints_the_bill_to_block(customer_client, customer):
    customer_client.post(reverse("subscriptions:account_profile"), PROFILE)
    package, monthly, options = shop_package()
    invoice = place(customer, package, monthly, [options["eu"]]).invoices.get()

    html = customer_client.get(
        reverse("payments:invoice_document", args=[invoice.pk])
    ).content.decode()

    bill_to = html[
        html.index('id="bill-to"') : html.index("</section>", html.index('id="bill-to"'))
    ]
    for line in ("Ann Example", "Example GmbH", "Hauptstraße 1", "10115 Berlin", "Germany"):
        assert line in bill_to
    assert "VAT id DE123456789" in bill_to
    assert "ann@example.com" in bill_to


def test_without_billing_details_the_invoice_is_billed_to_the_email(customer_client, customer):
    package, monthly, options = shop_package()
    invoice = place(customer, package, monthly, [options["eu"]]).invoices.get()

    html = customer_client.get(
        reverse("payments:invoice_document", args=[invoice.pk])
    ).content.decode()

    assert "ann@example.com" in html[html.index('id="bill-to"') :]


def bill_to_of(client, invoice) -> str:
    html = client.get(reverse("payments:invoice_document", args=[invoice.pk])).content.decode()
    start = html.index('id="bill-to"')
    return html[start : html.index("</section>", start)]


def test_an_invoice_keeps_the_details_it_was_issued_with_when_they_change(
    customer_client, customer, mailoutbox
):
    customer_client.post(reverse("subscriptions:account_profile"), PROFILE)
    package, monthly, options = shop_package()
    before = place(customer, package, monthly, [options["eu"]]).invoices.get()

    customer_client.post(
        reverse("subscriptions:account_profile"),
        {**PROFILE, "company": "Other AG", "address": "Ring 2\n80331 München"},
    )
    customer_client.post(
        reverse("subscriptions:account_email"),
        {"email": "ann.new@example.com", "password": "ann-password-1"},
    )
    customer_client.get(link_in(mailoutbox[-1]))
    after = place(customer, package, monthly, [options["eu"]]).invoices.get()

    issued = bill_to_of(customer_client, before)
    assert "Example GmbH" in issued and "Hauptstraße 1" in issued
    assert "ann@example.com" in issued and "Other AG" not in issued
    later = bill_to_of(customer_client, after)
    assert "Other AG" in later and "80331 München" in later and "ann.new@example.com" in later
    assert "Example GmbH" not in later
    # The first change froze the first invoice; the second left it as it was.
    before.refresh_from_db()
    assert before.bill_to[:2] == ["Ann Example", "Example GmbH"]
    assert before.bill_to[-1] == "ann@example.com"


# --- email ------------------------------------------------------------------------------


def link_in(message) -> str:
    return re.search(r"https?://\S+", message.body).group(0)


def test_changing_the_email_sends_a_link_to_the_new_address_and_applies_when_opened(
    customer_client, customer, mailoutbox
):
    response = customer_client.post(
        reverse("subscriptions:account_email"),
        {"email": "Ann.New@Example.com", "password": "ann-password-1"},
    )

    assert response.status_code == 302
    customer.refresh_from_db()
    assert customer.email == "ann@example.com"  # not before the link is opened
    (message,) = mailoutbox
    assert message.to == ["ann.new@example.com"]

    opened = customer_client.get(link_in(message), follow=True)

    customer.refresh_from_db()
    assert customer.email == customer.username == "ann.new@example.com"
    assert "Your email address is now ann.new@example.com" in opened.content.decode()
    assert mailoutbox[-1].to == ["ann@example.com"]  # the old address is told
    # The new address logs in.
    customer_client.logout()
    login = customer_client.post(
        reverse("login"), {"username": "ann.new@example.com", "password": "ann-password-1"}
    )
    assert login.status_code == 302


def test_an_email_link_works_once(client, customer_client, customer, mailoutbox):
    customer_client.post(
        reverse("subscriptions:account_email"),
        {"email": "ann.new@example.com", "password": "ann-password-1"},
    )
    link = link_in(mailoutbox[0])
    client.get(link)

    again = client.get(link)

    assert again.status_code == 400
    assert "invalid or has expired" in again.content.decode()


def test_an_email_link_expires_after_three_days(client, customer_client, customer, mailoutbox):
    customer_client.post(
        reverse("subscriptions:account_email"),
        {"email": "ann.new@example.com", "password": "ann-password-1"},
    )

    with time_machine.travel(timezone.now() + timedelta(days=3, minutes=1)):
        response = client.get(link_in(mailoutbox[0]))

    assert response.status_code == 400
    customer.refresh_from_db()
    assert customer.email == "ann@example.com"


def test_a_forged_email_link_changes_nothing(client, customer):
    response = client.get(reverse("subscriptions:email_confirm", args=["forged:token"]))
    assert response.status_code == 400
    customer.refresh_from_db()
    assert customer.email == "ann@example.com"


def test_the_email_form_refuses_a_taken_address_and_a_wrong_password(
    customer_client, other_customer, mailoutbox
):
    taken = customer_client.post(
        reverse("subscriptions:account_email"),
        {"email": "BOB@example.com", "password": "ann-password-1"},
    )
    wrong = customer_client.post(
        reverse("subscriptions:account_email"),
        {"email": "ann.new@example.com", "password": "nope"},
    )

    assert "already exists" in taken.content.decode()
    assert "This is not your password" in wrong.content.decode()
    assert mailoutbox == []


def test_an_address_taken_after_the_link_was_sent_is_refused(
    client, customer_client, customer, mailoutbox
):
    customer_client.post(
        reverse("subscriptions:account_email"),
        {"email": "ann.new@example.com", "password": "ann-password-1"},
    )
    get_user_model().objects.create_user(
        username="ann.new@example.com", email="ann.new@example.com"
    )

    response = client.get(link_in(mailoutbox[0]))

    assert response.status_code == 400
    customer.refresh_from_db()
    assert customer.email == "ann@example.com"


# --- password -----------------------------------------------------------------------------


def test_a_customer_changes_their_password_and_stays_logged_in(customer_client, customer):
    response = customer_client.post(
        reverse("subscriptions:account_password"),
        {
            "old_password": "ann-password-1",
            "new_password1": "a-new-long-pass-42",
            "new_password2": "a-new-long-pass-42",
        },
        follow=True,
    )

    customer.refresh_from_db()
    assert "Your password is changed" in response.content.decode()
    assert customer.check_password("a-new-long-pass-42")
    assert response.context["user"] == customer


def test_the_password_change_refuses_a_wrong_old_password(customer_client, customer):
    response = customer_client.post(
        reverse("subscriptions:account_password"),
        {
            "old_password": "wrong",
            "new_password1": "a-new-long-pass-42",
            "new_password2": "a-new-long-pass-42",
        },
    )
    assert response.status_code == 200
    customer.refresh_from_db()
    assert customer.check_password("ann-password-1")


# --- closing the account ---------------------------------------------------------------


def close(client, **fields):
    return client.post(
        reverse("subscriptions:account_close"),
        {"password": "ann-password-1", "confirm": "on", **fields},
    )


def test_closing_ends_services_at_period_end_keeps_invoices_and_turns_off_the_login(
    client, customer_client, customer
):
    service = active_service(customer)
    package, monthly, options = shop_package(variant_code="zone")
    unpaid = place(customer, package, monthly, [options["eu"]])
    paid_invoices = Invoice.objects.filter(status=Invoice.Status.PAID).count()

    page = customer_client.get(reverse("subscriptions:account_close")).content.decode()
    response = close(customer_client)

    assert f"{service.current_period_end:%Y-%m-%d}" in page
    assert response.status_code == 302
    service.refresh_from_db()
    assert service.status == Service.Status.ACTIVE  # it runs to the end of what was paid
    assert service.cancel_at == service.current_period_end
    unpaid.refresh_from_db()
    assert unpaid.status == Order.Status.CANCELLED
    assert unpaid.services.get().status == Service.Status.CANCELLED
    assert Invoice.objects.filter(status=Invoice.Status.PAID).count() == paid_invoices
    assert Invoice.objects.filter(customer=customer).count() == 2  # kept, the unpaid one cancelled
    assert Order.objects.filter(customer=customer).count() == 2
    customer.refresh_from_db()
    assert not customer.is_active
    login = client.post(
        reverse("login"), {"username": "ann@example.com", "password": "ann-password-1"}
    )
    assert login.status_code == 200  # refused


def test_closing_needs_the_password_and_the_confirmation(customer_client, customer):
    wrong = close(customer_client, password="nope")
    unticked = customer_client.post(
        reverse("subscriptions:account_close"), {"password": "ann-password-1"}
    )
    assert wrong.status_code == unticked.status_code == 200
    customer.refresh_from_db()
    assert customer.is_active


def test_an_account_with_a_service_customers_may_not_cancel_is_closed_by_staff(
    customer_client, customer
):
    service = active_service(customer, allow_cancellation=False)

    page = customer_client.get(reverse("subscriptions:account_close")).content.decode()
    response = close(customer_client)

    assert "Contact us to close your account" in page
    assert response.status_code == 409
    customer.refresh_from_db()
    service.refresh_from_db()
    assert customer.is_active and service.cancel_at is None


def test_closing_cancels_a_service_in_grace_at_once(customer_client, customer):
    service = active_service(customer, grace_period=3, grace_interval="day")
    services_run_billing(now=service.current_period_end)

    close(customer_client)

    service.refresh_from_db()
    assert service.status == Service.Status.CANCELLED
    renewal = Invoice.objects.of_service(service.pk).get(kind=Invoice.Kind.RENEWAL)
    assert renewal.status == Invoice.Status.UNPAID  # still owed: the grace was used
