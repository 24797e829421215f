"""Staff read orders, invoices, payments, services and jobs on pages laid out for reading."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from payments.models import Payment
from payments.services import payment_record
from subscriptions.models import Invoice, Order, ProvisioningJob, Service
from subscriptions.ordering import order_place
from tests.factories import shop_package

pytestmark = pytest.mark.django_db

RECORD_MODELS = [Order, Invoice, Payment, Service, ProvisioningJob]


@pytest.fixture
def paid_order(customer, staff_user):
    """A paid order of one unit: its invoice, a payment, its service and a create job."""
    package, monthly, options = shop_package(name="Team Meetings")
    order = order_place(
        customer=customer,
        package=package,
        price=monthly,
        variant_options=[options["eu"]],
        quantity=1,
        currency="USD",
        checkout_fields={"notes": "cara-room"},
    )
    invoice = order.invoices.get()
    payment_record(
        method="bank_transfer",
        invoice=invoice,
        amount=invoice.total,
        reference="wire 42",
        recorded_by=staff_user,
    )
    return order


def change_url(obj) -> str:
    opts = obj._meta
    return reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[obj.pk])


def page(client, obj) -> str:
    response = client.get(change_url(obj))
    assert response.status_code == 200
    return response.content.decode()


def section(html: str, section_id: str) -> str:
    match = re.search(rf'<section[^>]*id="{section_id}".*?</section>', html, re.S)
    assert match, f"no section {section_id}"
    return match.group(0)


def section_labelled(html: str, label: str) -> str:
    match = re.search(rf'<section[^>]*aria-label="{label}".*?</section>', html, re.S)
    assert match, f"no section {label}"
    return match.group(0)


def summary(html: str) -> str:
    match = re.search(r'<section class="module record-summary".*?</section>', html, re.S)
    assert match, "no summary"
    return match.group(0)


@pytest.mark.parametrize("model", RECORD_MODELS, ids=lambda model: model.__name__)
def test_a_record_page_has_no_save_or_add_buttons_since_nothing_on_it_is_editable(
    staff_client, paid_order, model
):
    html = page(staff_client, model.objects.first())

    for button in ("_save", "_continue", "_addanother", "_saveasnew"):
        assert f'name="{button}"' not in html
    assert "Add another" not in html
    assert 'class="module record-summary"' in html


def test_the_order_page_sums_it_up_and_links_its_lines_invoices_and_services(
    staff_client, paid_order, customer
):
    order = paid_order
    invoice, service = order.invoices.get(), order.services.get()

    html = page(staff_client, order)

    top = summary(html)
    assert order.number in top
    assert f'<a href="{change_url(customer)}">ann@example.com</a>' in top
    assert "Paid" in top
    assert "21.00\xa0USD" in top  # 10 + 2 region, 5 + 1 setup fees, 3 signup fee
    assert f'href="{change_url(order.package)}"' in top
    lines = section(html, "related-lines")
    assert "Signup fee (once per order)" in lines and "3.00\xa0USD" in lines
    assert f'<a href="{change_url(invoice)}">{invoice.number}</a>' in section(
        html, "related-invoices"
    )
    assert f'href="{change_url(service)}"' in section(html, "related-services")
    assert html.index("record-summary") < html.index("related-lines")


def test_the_invoice_page_shows_the_balance_its_lines_and_linked_payments(staff_client, paid_order):
    invoice = paid_order.invoices.get()
    payment = invoice.payments.get()

    html = page(staff_client, invoice)

    top = summary(html)
    assert "Balance due</dt><dd>0.00\xa0USD" in top
    assert f'<a href="{change_url(paid_order)}">{paid_order.number}</a>' in top
    payments = section(html, "related-payments")
    assert f'href="{change_url(payment)}"' in payments and "wire 42" in payments
    assert "Setup fee" in section(html, "related-lines")


def test_the_service_page_links_its_invoices_jobs_and_plan_changes(staff_client, paid_order):
    service = paid_order.services.get()
    job = service.jobs.get()

    html = page(staff_client, service)

    assert f'href="{change_url(paid_order)}"' in summary(html)
    assert f'href="{change_url(paid_order.invoices.get())}"' in section(html, "related-invoices")
    assert f'href="{change_url(job)}"' in section(html, "related-jobs")
    assert "None." in section(html, "related-plan-changes")


def test_snapshots_read_as_key_value_lists_not_raw_json(staff_client, paid_order):
    service = paid_order.services.get()

    html = page(staff_client, service)

    assert "<dt>notes</dt><dd>cara-room</dd>" in section_labelled(html, "Checkout fields")
    variants = section_labelled(html, "Variants")
    assert '<th scope="col">option</th>' in variants and "<td>Europe</td>" in variants
    assert "&quot;" not in html  # no JSON anywhere on the page


def test_the_job_page_links_its_service_and_formats_its_payload(staff_client, paid_order):
    job = ProvisioningJob.objects.get()

    html = page(staff_client, job)

    service = job.service
    assert f'href="{change_url(service)}"' in summary(html)
    assert f'href="{change_url(service)}"' in section(html, "related-service")
    assert 'aria-label="Payload"' in html
    assert "{&quot;" not in html


def test_the_payment_page_links_its_invoice_and_customer(staff_client, paid_order, customer):
    payment = Payment.objects.get()

    top = summary(page(staff_client, payment))

    assert f'<a href="{change_url(payment.invoice)}">{payment.invoice.number}</a>' in top
    assert f'href="{change_url(customer)}"' in top
    assert "wire 42" in top and "staff" in top
