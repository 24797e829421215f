"""The plan-change confirm page: its figures come from the function that bills them."""

from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine
from django.core.exceptions import ValidationError
from django.urls import reverse
from django.utils import timezone

from catalog.models import PackagePriceAmount
from subscriptions.models import Invoice, PlanChange
from subscriptions.plan_changes import service_change_package, service_change_preview
from tests.factories import active_service, target_of, usd, with_period
from tests.support.html import hidden_inputs
from tests.support.mail import text
from tests.support.pages import confirm_plan_change

pytestmark = pytest.mark.django_db


def change_url(service) -> str:
    return reverse("subscriptions:service_change_package", args=[service.pk])


def test_the_preview_is_what_the_change_bills_at_the_same_moment(customer):
    service = with_period(active_service(customer, tier=2), days=30)
    target = target_of(service.package, tier=3, price="40")
    now = service.current_period_start + timedelta(days=10, seconds=7)

    preview = service_change_preview(service=service, customer=customer, package=target, now=now)
    change = service_change_package(service=service, customer=customer, package=target, now=now)

    assert preview.charge == change.charge == change.invoice.total
    assert preview.recurring_amount == change.recurring_amount
    assert preview.applies_at == change.effective_at == now


def test_the_confirm_page_shows_the_charge_the_new_price_and_when_it_applies(
    customer_client, customer
):
    service = active_service(customer, tier=2)
    target = target_of(service.package, tier=3, price="40")

    page = customer_client.get(change_url(service), {"package": target.pk})

    html = text(page.content.decode())
    preview = service_change_preview(
        service=service, customer=customer, package=target, now=timezone.now()
    )
    assert page.status_code == 200
    assert f"{preview.charge.amount} USD, the difference for the rest of this period" in html
    assert f"{preview.recurring_amount.amount} USD every" in html
    assert "Now, when you confirm" in html
    assert not PlanChange.objects.exists()  # looking changes nothing


def test_confirming_bills_exactly_the_amount_previewed_even_minutes_later(
    customer_client, customer
):
    service = with_period(active_service(customer, tier=2), days=30)
    target = target_of(service.package, tier=3, price="1000")
    url = change_url(service)
    start = service.current_period_start + timedelta(days=3)
    with time_machine.travel(start, tick=False):
        page = customer_client.get(url, {"package": target.pk})
        shown = service_change_preview(
            service=service, customer=customer, package=target, now=start
        )
    # Four minutes later the proration to the second has moved by cents.
    with time_machine.travel(start + timedelta(minutes=4), tick=False):
        later = service_change_preview(
            service=service, customer=customer, package=target, now=timezone.now()
        )
        response = customer_client.post(url, hidden_inputs(page.content.decode(), "confirm-change"))

    assert later.charge != shown.charge
    assert response.status_code == 302
    change = PlanChange.objects.get()
    assert change.charge == shown.charge
    assert Invoice.objects.get(kind=Invoice.Kind.PLAN_CHANGE).total == shown.charge
    assert f"{shown.charge.amount} USD" in text(page.content.decode())


def test_a_downgrade_preview_gives_the_date_the_change_takes_effect(customer_client, customer):
    service = active_service(customer, tier=2)
    target = target_of(service.package, tier=1, price="5")

    page, response = confirm_plan_change(customer_client, service, target)

    html = page.content.decode()
    change = PlanChange.objects.get()
    assert f"On {service.current_period_end:%Y-%m-%d}, when your current period ends" in html
    assert 'Charged now</dt><dd id="preview-charge">Nothing' in html
    assert change.effective_at == service.current_period_end
    assert change.status == PlanChange.Status.SCHEDULED
    assert change.charge == usd(0)
    assert not Invoice.objects.filter(kind=Invoice.Kind.PLAN_CHANGE).exists()


def test_a_price_changed_after_the_preview_is_refused_not_billed(customer_client, customer):
    service = active_service(customer, tier=2)
    target = target_of(service.package, tier=3, price="40")
    page = customer_client.get(change_url(service), {"package": target.pk})
    PackagePriceAmount.objects.filter(package_price__package=target).update(price=60)

    response = customer_client.post(
        change_url(service), hidden_inputs(page.content.decode(), "confirm-change")
    )

    html = text(response.content.decode())
    assert response.status_code == 409
    assert "The price of this change has changed since you saw it" in html
    assert "nothing was charged" in html
    assert not PlanChange.objects.exists()
    assert not Invoice.objects.filter(kind=Invoice.Kind.PLAN_CHANGE).exists()
    # The page shows the new figures to confirm instead.
    fresh = service_change_preview(
        service=service, customer=customer, package=target, now=timezone.now()
    )
    assert 'id="confirm-change"' in html
    assert f"{fresh.recurring_amount.amount} USD every" in html


def test_a_confirmation_without_a_preview_or_with_a_forged_one_shows_the_preview(
    customer_client, customer
):
    service = active_service(customer, tier=2)
    target = target_of(service.package, tier=3, price="40")
    page = customer_client.get(change_url(service), {"package": target.pk})
    fields = hidden_inputs(page.content.decode(), "confirm-change")

    bare = customer_client.post(change_url(service), {"package": target.pk})
    forged = customer_client.post(
        change_url(service), {**fields, "preview": fields["preview"].replace(":", "x:", 1)}
    )

    for response in (bare, forged):
        assert response.status_code == 409
        assert "Review the change, then confirm it." in response.content.decode()
    assert not PlanChange.objects.exists()


def test_a_confirmation_for_another_target_than_previewed_is_not_applied(customer_client, customer):
    service = active_service(customer, tier=2)
    cheap = target_of(service.package, tier=3, price="21")
    dear = target_of(service.package, tier=3, price="90")
    page = customer_client.get(change_url(service), {"package": cheap.pk})
    fields = hidden_inputs(page.content.decode(), "confirm-change")

    response = customer_client.post(change_url(service), {**fields, "package": dear.pk})

    assert response.status_code == 409
    assert not PlanChange.objects.exists()


def test_a_preview_over_half_an_hour_old_is_shown_again_before_anything_is_billed(
    customer_client, customer
):
    service = active_service(customer, tier=2)
    target = target_of(service.package, tier=3, price="40")
    page = customer_client.get(change_url(service), {"package": target.pk})

    with time_machine.travel(timezone.now() + timedelta(minutes=31)):
        response = customer_client.post(
            change_url(service), hidden_inputs(page.content.decode(), "confirm-change")
        )

    assert response.status_code == 409
    assert "over 30 minutes old" in response.content.decode()
    assert not PlanChange.objects.exists()


def test_the_service_refuses_figures_priced_in_the_future(customer):
    service = active_service(customer, tier=2)
    target = target_of(service.package, tier=3, price="40")
    later = timezone.now() + timedelta(hours=1)
    figures = service_change_preview(
        service=service, customer=customer, package=target, now=later
    ).figures()

    with pytest.raises(ValidationError) as refused:
        service_change_package(
            service=service, customer=customer, package=target, confirmed=figures
        )

    assert refused.value.code == "preview_outdated"
    assert not PlanChange.objects.exists()


def test_the_confirm_page_of_a_target_the_service_may_not_move_to_says_why(
    customer_client, customer
):
    service = active_service(customer, tier=2)
    retired = target_of(service.package, tier=3, retired=True)

    response = customer_client.get(change_url(service), {"package": retired.pk})

    assert response.status_code == 409
    assert "no longer sold" in response.content.decode()


def test_another_customer_cannot_preview_a_change(client, customer, other_customer):
    service = active_service(customer, tier=2)
    target = target_of(service.package, tier=3)
    client.force_login(other_customer)

    assert client.get(change_url(service), {"package": target.pk}).status_code == 404
