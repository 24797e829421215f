"""The audit trail: who changed which catalog field from what to what, and when."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.db.models.signals import post_delete, post_save
from django.urls import reverse
from django.utils import timezone

from catalog.history import FieldChange, history_model, trail_page
from catalog.models import Package, PackageScaling
from provisioning.models import WebhookInstance
from tests.factories import (
    CatalogFactory,
    FeatureFactory,
    ManualInstanceFactory,
    PackageFactory,
    PackageFeatureFactory,
    PackagePriceAmountFactory,
    PackagePriceFactory,
    PackageQuotaFactory,
    QuotaFactory,
    VariantFactory,
    VariantOptionFactory,
    VariantPriceAmountFactory,
    VariantPriceFactory,
    WebhookInstanceFactory,
    priced_package,
    usd,
)
from tests.support.admin_forms import submit

pytestmark = pytest.mark.django_db


def latest_changes() -> list[FieldChange]:
    entries, _ = trail_page(limit=1)
    assert entries[0].action == "Changed"
    return entries[0].changes


EDITS = [
    (lambda: CatalogFactory(name="Shop"), "name", "Hosting", FieldChange("name", "Shop", "Hosting")),
    (PackageFactory, "tier", 3, FieldChange("tier", "1", "3")),
    (PackagePriceFactory, "enabled", False, FieldChange("enabled", "yes", "no")),
    (PackagePriceAmountFactory, "price", usd("12.50"), FieldChange("price", "$9.00", "$12.50")),
    (VariantFactory, "type", "radio", FieldChange("type", "Drop-down", "Radio buttons")),
    (lambda: VariantOptionFactory(value="us"), "value", "eu-west", FieldChange("value", "us", "eu-west")),
    (VariantPriceFactory, "name", "Annual", FieldChange("name", "Monthly", "Annual")),
    (VariantPriceAmountFactory, "price", usd("3"), FieldChange("price", "$2.00", "$3.00")),
    (lambda: FeatureFactory(name="Disk"), "name", "Storage", FieldChange("name", "Disk", "Storage")),
    (PackageFeatureFactory, "value", "no", FieldChange("value", "yes", "no")),
    (QuotaFactory, "unit", "GB", FieldChange("unit", "participants", "GB")),
    (PackageQuotaFactory, "limit", 250, FieldChange("limit", "100", "250")),
    (ManualInstanceFactory, "notify_email", "ops@example.com",
     FieldChange("notify email", "—", "ops@example.com")),
    (WebhookInstanceFactory, "timeout_seconds", 30, FieldChange("timeout seconds", "2", "30")),
]  # fmt: skip


@pytest.mark.parametrize(("factory", "name", "value", "expected"), EDITS)
def test_an_edit_of_each_catalog_model_is_recorded_with_its_old_and_new_value(
    factory, name, value, expected
):
    row = factory()
    setattr(row, name, value)
    row.save()
    changes = latest_changes()
    # Money reads in the server's locale; compare the figures, not the symbol's place.
    if "$" in expected.old:
        assert [
            (c.label, c.old.replace("\xa0", ""), c.new.replace("\xa0", "")) for c in changes
        ] in (
            [(expected.label, expected.old, expected.new)],
            [(expected.label, expected.old.strip("$") + "USD", expected.new.strip("$") + "USD")],
        )
    else:
        assert changes == [expected]


def test_the_history_tables_keep_each_money_amount_with_its_currency():
    amount = PackagePriceAmountFactory(price=usd("9"))
    amount.price = usd("10")
    amount.save()
    stored = history_model(type(amount)).objects.filter(id=amount.pk).order_by("history_id")
    assert [(row.price.amount, row.price_currency) for row in stored] == [
        (usd("9").amount, "USD"),
        (usd("10").amount, "USD"),
    ]


def test_scaling_targets_set_on_the_package_page_are_recorded(staff_client):
    package, target = priced_package(), priced_package(tier=2)
    url = reverse("admin:catalog_package_change", args=[package.pk])
    response = submit(staff_client, url, {"scaling_targets": [target.pk]}, form_id="package_form")
    assert response.status_code == 302
    assert PackageScaling.objects.filter(from_package=package, to_package=target).exists()
    entries, _ = trail_page()
    scaling = [entry for entry in entries if entry.subject.startswith("Scaling")]
    assert scaling[0].action == "Created"
    assert scaling[0].subject == f"Scaling to “{target.name}”"
    assert scaling[0].user.username == "staff"


def test_a_secret_is_never_stored_nor_shown_in_the_history(staff_client):
    instance = WebhookInstanceFactory(signing_secret="first-secret-value")
    url = reverse("admin:provisioning_webhookinstance_change", args=[instance.pk])
    response = submit(
        staff_client, url, {"signing_secret": "second-secret-value"}, form_id="webhookinstance_form"
    )
    assert response.status_code == 302
    instance.refresh_from_db()
    assert instance.signing_secret == "second-secret-value"

    history_table = history_model(WebhookInstance)._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT * FROM {history_table}")
        stored = repr(cursor.fetchall())
    assert "first-secret-value" not in stored
    assert "second-secret-value" not in stored

    page = staff_client.get(reverse("admin:catalog_audit_trail")).content.decode()
    assert "signing secret</strong>: changed (hidden)" in page
    assert "secret-value" not in page


def test_the_package_history_page_shows_edits_made_on_its_inlines(staff_client):
    package = priced_package()  # “Monthly” at 9 USD / 8 EUR
    feature = PackageFeatureFactory(
        package=package, feature=FeatureFactory(value_type="text"), value="10 GB"
    )
    url = reverse("admin:catalog_package_change", args=[package.pk])
    response = submit(
        staff_client,
        url,
        {"tier": 4, "prices-0-price_USD": "12.00", "features-0-value": "20 GB"},
        form_id="package_form",
    )
    assert response.status_code == 302
    assert feature.pk

    page = staff_client.get(reverse("admin:catalog_package_history", args=[package.pk]))
    html = page.content.decode().replace("\xa0", " ")
    assert page.status_code == 200
    assert "Changed: Package “" in html
    assert "<strong>tier</strong>: <del>1</del> → <ins>4</ins>" in html
    assert "Changed: USD amounts of “Monthly”" in html
    assert "9.00" in html and "12.00" in html
    assert "<strong>value</strong>: <del>10 GB</del> → <ins>20 GB</ins>" in html
    assert "<td>staff</td>" in html
    # The other currency's amount was not touched and is not listed as changed.
    assert "Changed: EUR amounts" not in html


def test_the_trail_is_filtered_by_user_and_by_date(staff_client, staff_user, django_user_model):
    other = django_user_model.objects.create_user(
        username="bob", email="bob@example.com", password="x", is_staff=True
    )
    package = PackageFactory(name="Old edit")
    old = history_model(Package).objects.get(id=package.pk)
    old.history_date = timezone.now() - timedelta(days=10)
    old.history_user = other
    old.save()
    catalog = CatalogFactory(name="Recent edit")
    recent = history_model(type(catalog)).objects.get(id=catalog.pk)
    recent.history_user = staff_user
    recent.save()
    url = reverse("admin:catalog_audit_trail")

    by_bob = staff_client.get(url, {"user": other.pk}).content.decode()
    assert "Old edit" in by_bob and "Recent edit" not in by_bob

    today = timezone.localdate()
    last_week = staff_client.get(url, {"since": today - timedelta(days=3), "until": today})
    assert "Recent edit" in last_week.content.decode()
    assert "Old edit" not in last_week.content.decode()

    long_ago = staff_client.get(
        url, {"since": today - timedelta(days=11), "until": today - timedelta(days=9)}
    ).content.decode()
    assert "Old edit" in long_ago and "Recent edit" not in long_ago


@pytest.mark.parametrize(
    "query",
    [
        {"since": "not a date"},
        {"user": "999999"},
        {"page": "-3"},
        {"since": "2030-01-02", "until": "2030-01-01"},
    ],
)
def test_a_malformed_trail_filter_is_answered_with_the_form_not_an_error(staff_client, query):
    response = staff_client.get(reverse("admin:catalog_audit_trail"), query)
    assert response.status_code == 200
    assert response.context["form"].errors


def test_the_trail_pages_through_older_edits(staff_client):
    for number in range(55):
        CatalogFactory(name=f"Catalog number {number}")
    url = reverse("admin:catalog_audit_trail")
    first = staff_client.get(url)
    assert first.context["has_next"] and len(first.context["entries"]) == 50
    second = staff_client.get(url, {"page": 2})
    assert not second.context["has_next"] and len(second.context["entries"]) == 5
    assert "Catalog number 0" in second.content.decode()


def test_writing_history_rows_does_not_flush_the_storefront_cache():
    # The storefront cache listens to the catalog models by sender; history rows are
    # other models, so recording an edit adds no cache flush to the edit's own one.
    for model in (Package, PackageScaling):
        assert post_save.has_listeners(model)
        assert not post_save.has_listeners(history_model(model))
        assert not post_delete.has_listeners(history_model(model))
