"""Customer pages: accounts, checkout, and the customer area."""

from __future__ import annotations

import re

import pytest
from django.core import mail
from django.urls import reverse

from catalog.models import Package
from payments.services import payment_record
from subscriptions.models import Invoice, Order, Service
from tests.factories import WebhookInstanceFactory, place, shop_package

pytestmark = pytest.mark.django_db


def checkout_url(package) -> str:
    return reverse("subscriptions:checkout", args=[package.catalog.slug, package.slug])


# --- accounts ----------------------------------------------------------------


def test_a_visitor_signs_up_with_an_email_and_is_logged_in(client, django_user_model):
    response = client.post(
        reverse("signup"),
        {
            "email": "New@Example.com",
            "password1": "a-long-pass-123",
            "password2": "a-long-pass-123",
        },
    )
    assert response.status_code == 302
    user = django_user_model.objects.get(email="new@example.com")
    assert client.get(reverse("subscriptions:account")).context["user"] == user


def test_sign_up_refuses_an_email_already_used(client, customer):
    response = client.post(
        reverse("signup"),
        {
            "email": "ANN@example.com",
            "password1": "a-long-pass-123",
            "password2": "a-long-pass-123",
        },
    )
    assert response.status_code == 200
    assert "already exists" in response.content.decode()


def test_a_customer_logs_in_with_their_email(client, customer):
    response = client.post(
        reverse("login"), {"username": "Ann@Example.com", "password": "ann-password-1"}
    )
    assert response.status_code == 302
    assert response.url == reverse("subscriptions:account")


def test_a_wrong_password_is_refused(client, customer):
    response = client.post(reverse("login"), {"username": "ann@example.com", "password": "nope"})
    assert response.status_code == 200
    assert "Enter the email address and password" in response.content.decode()


def test_staff_still_log_in_to_the_admin_with_their_username(client, staff_user):
    response = client.post(
        "/admin/login/?next=/admin/", {"username": "staff", "password": "staff-password"}
    )
    assert response.status_code == 302
    assert client.get("/admin/").status_code == 200


def test_logout_ends_the_session(customer_client):
    response = customer_client.post(reverse("logout"))
    assert response.status_code == 302
    assert customer_client.get(reverse("subscriptions:account")).status_code == 302


def test_password_reset_mails_a_link_that_sets_a_new_password(client, customer):
    client.post(reverse("password_reset"), {"email": "ann@example.com"})
    assert len(mail.outbox) == 1
    link = re.search(r"http://testserver(/accounts/reset/\S+/)", mail.outbox[0].body).group(1)

    form_page = client.get(link, follow=True)
    client.post(
        form_page.redirect_chain[-1][0],
        {"new_password1": "brand-new-pass-9", "new_password2": "brand-new-pass-9"},
    )

    customer.refresh_from_db()
    assert customer.check_password("brand-new-pass-9")


# --- checkout ----------------------------------------------------------------


def test_checkout_asks_a_visitor_to_log_in_first(client):
    package, monthly, options = shop_package()
    url = checkout_url(package) + f"?price={monthly.pk}&variant_region={options['eu'].pk}"
    response = client.get(url)
    assert response.status_code == 302
    assert response.url.startswith(reverse("login"))


def test_checkout_reviews_every_line_before_the_order(customer_client):
    package, monthly, options = shop_package(trial_period=7, trial_interval="day")
    response = customer_client.get(
        checkout_url(package), {"price": monthly.pk, "variant_region": options["eu"].pk}
    )
    page = response.content.decode()
    assert response.status_code == 200
    for text in ("Monthly", "Region: Europe", "Setup fee", "Signup fee", "Free 7-day trial",
                 "First payment due", "Total due today", "9.00"):  # fmt: skip
        assert text in page, text
    assert "Place order" in page
    assert not Order.objects.exists()


def test_checkout_names_the_first_payment_after_a_trial_as_the_service_will_bill_it(
    customer_client,
):
    package, monthly, options = shop_package(trial_period=14, trial_interval="day")
    response = customer_client.get(
        checkout_url(package), {"price": monthly.pk, "variant_region": options["eu"].pk}
    )
    page = response.content.decode()
    # The trial starts when the service is ready, so no date is promised at checkout.
    assert re.search(r'id="first-due">\s*14 days after your service is ready<', page)
    assert "14 days after your service is ready, then every month" in page
    assert not re.search(r"from \d{4}-\d\d-\d\d", page)


def test_checkout_places_the_order_and_shows_it(customer_client, customer):
    package, monthly, options = shop_package()
    data = {"price": monthly.pk, "variant_region": options["eu"].pk, "checkout_token": "t1"}

    response = customer_client.post(checkout_url(package), data)

    order = Order.objects.get()
    assert response.status_code == 302
    # Not free: straight on to paying its invoice.
    assert response.url == reverse("payments:invoice", args=[order.invoices.get().pk])
    assert order.customer == customer
    assert customer_client.post(checkout_url(package), data).url == response.url  # resubmitted


def test_checkout_shows_a_refusal_on_the_page_and_writes_nothing(customer_client):
    package, monthly, options = shop_package(stock_qty=0)
    response = customer_client.post(
        checkout_url(package), {"price": monthly.pk, "variant_region": options["eu"].pk}
    )
    assert response.status_code == 409
    assert "This package is sold out." in response.content.decode()
    assert not Order.objects.exists()


def test_checkout_refuses_a_pricing_option_of_another_package(customer_client):
    package, _, options = shop_package()
    _, foreign, _ = shop_package(variant_code="zone")
    response = customer_client.get(
        checkout_url(package), {"price": foreign.pk, "variant_region": options["eu"].pk}
    )
    assert "does not belong to this package" in response.content.decode()
    assert "Place order" not in response.content.decode()


def test_checkout_uses_the_currency_chosen_in_the_store(customer_client):
    package, monthly, _ = shop_package()
    package.variants.clear()
    session = customer_client.session
    session["currency"] = "EUR"
    session.save()

    customer_client.post(checkout_url(package), {"price": monthly.pk})

    assert Order.objects.get().currency == "EUR"


def test_checkout_asks_for_the_plugins_fields(customer_client):
    package, monthly, options = shop_package(
        provider_instance=WebhookInstanceFactory(),
        provisioning_options={"plan_code": "pro", "region": "", "send_settings": True},
    )
    data = {"price": monthly.pk, "variant_region": options["eu"].pk}
    assert "Service label" in customer_client.get(checkout_url(package), data).content.decode()

    refused = customer_client.post(checkout_url(package), {**data, "checkout-label": "bad label"})
    assert not Order.objects.exists()
    assert "letters, digits and hyphens" in refused.content.decode()

    customer_client.post(checkout_url(package), {**data, "checkout-label": "my-room"})
    assert Order.objects.get().checkout_fields == {"label": "my-room"}


def test_checkout_of_a_draft_package_is_not_found(customer_client):
    package, monthly, _ = shop_package(status=Package.Status.DRAFT)
    assert customer_client.get(checkout_url(package), {"price": monthly.pk}).status_code == 404


# --- customer area -----------------------------------------------------------


@pytest.fixture
def bought(customer):
    package, monthly, options = shop_package()
    order = place(customer, package, monthly, [options["eu"]])
    return order, order.services.get(), order.invoices.get()


def test_the_account_lists_the_customers_orders_services_and_invoices(customer_client, bought):
    order, service, invoice = bought
    page = customer_client.get(reverse("subscriptions:account")).content.decode()
    assert order.number in page and invoice.number in page and str(service) in page


def test_the_account_does_not_list_other_customers_records(client, other_customer, bought):
    client.force_login(other_customer)
    page = client.get(reverse("subscriptions:account")).content.decode()
    order, _, invoice = bought
    assert order.number not in page and invoice.number not in page


@pytest.mark.parametrize(
    "name, index",
    [
        ("subscriptions:order", 0),
        ("subscriptions:service", 1),
        ("payments:invoice", 2),
        ("subscriptions:order_cancel", 0),
        ("subscriptions:service_cancel", 1),
    ],
)
def test_another_customers_records_are_not_found(client, other_customer, bought, name, index):
    client.force_login(other_customer)
    url = reverse(name, args=[bought[index].pk])
    response = client.post(url, {"mode": "immediate"}) if "cancel" in name else client.get(url)
    assert response.status_code == 404
    assert Order.objects.get().status == Order.Status.AWAITING_PAYMENT


@pytest.mark.parametrize(
    "name, index",
    [("subscriptions:order", 0), ("subscriptions:service", 1), ("payments:invoice", 2)],
)
def test_a_customer_sees_their_own_records(customer_client, bought, name, index):
    url = reverse(name, args=[bought[index].pk])
    assert customer_client.get(url).status_code == 200


def test_a_customer_cancels_an_unpaid_order(customer_client, bought):
    order, _, _ = bought
    customer_client.post(reverse("subscriptions:order_cancel", args=[order.pk]))
    order.refresh_from_db()
    assert order.status == Order.Status.CANCELLED
    assert Invoice.objects.get().status == Invoice.Status.CANCELLED


def test_a_customer_requests_cancellation_of_a_service(customer_client, bought):
    order, service, invoice = bought
    payment_record(method="bank_transfer", invoice=invoice, amount=invoice.total)
    url = reverse("subscriptions:service_cancel", args=[service.pk])

    customer_client.post(url, {"mode": "immediate"}, follow=True)
    second = customer_client.post(url, {"mode": "immediate"}, follow=True)

    service.refresh_from_db()
    assert service.status == Service.Status.CANCELLED
    assert "already" in second.content.decode()
