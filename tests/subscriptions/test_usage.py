"""Usage of quotas: snapshotted when sold, recorded once per key, hard limits announced once,
overages priced for the billing run."""

from __future__ import annotations

import importlib
from datetime import timedelta
from decimal import Decimal

import pytest
from django.apps import apps
from django.core.exceptions import ValidationError
from django.utils import timezone
from djmoney.money import Money

from catalog.errors import ErrorCode
from catalog.models import PackageQuota
from subscriptions.jobs import provisioning_job_run
from subscriptions.models import ProvisioningJob, QuotaAlert, Service, UsageRecord
from subscriptions.plan_changes import service_change_package
from subscriptions.quotas import overage_lines_for, service_overage_lines, service_usage
from subscriptions.usage import usage_record
from tests.factories import (
    WebhookInstanceFactory,
    metered_service,
    quota_on,
    target_of,
    usd,
    with_period,
)
from tests.support.jobs import notification_tasks, send_queued_notifications
from tests.support.mail import subjects, text

pytestmark = pytest.mark.django_db


def record(service, quantity, *, key, code="minutes", at=None, source="staff"):
    """Usage reported the moment it happens (`at`, the clock as the service sees it)."""
    at = at or timezone.now()
    return usage_record(
        service=service,
        quota_code=code,
        quantity=Decimal(quantity),
        occurred_at=at,
        idempotency_key=key,
        source=source,
        now=at,
    )


def quota_reached_emails(service) -> int:
    return sum(
        "quota_reached" in task.args_kwargs["kwargs"]["events"]
        and task.args_kwargs["kwargs"]["customer_id"] == service.customer_id
        for task in notification_tasks()
    )


# --- the snapshot --------------------------------------------------------------


def test_a_service_keeps_its_quotas_as_sold_when_the_catalog_changes_later(customer):
    service = metered_service(customer, limit=1000, overage_price=usd("0.05"),
                              overages_enabled=True)  # fmt: skip
    PackageQuota.objects.filter(package=service.package).update(
        limit=10, overage_price=Decimal("9.99")
    )

    service.refresh_from_db()
    assert service.overages_enabled is True
    assert service.quotas == [{"code": "minutes", "name": "Meeting minutes", "unit": "minutes",
                               "limit": 1000, "overage_price": "0.05"}]  # fmt: skip


def test_a_service_sold_in_another_currency_than_the_overage_price_has_a_hard_limit(customer):
    service = metered_service(customer, limit=100, overage_price=usd("0.05"),
                              overages_enabled=True, currency="EUR")  # fmt: skip

    assert service.quotas[0]["overage_price"] is None
    record(service, "150", key="a")

    assert service.jobs.filter(action=ProvisioningJob.Action.LIMIT).exists()
    assert service_overage_lines(service, service.current_period_start,
                                 service.current_period_end) == []  # fmt: skip


def test_an_upgrade_brings_the_new_packages_quotas_from_the_change(customer):
    service = with_period(metered_service(customer, limit=100))
    bigger = target_of(service.package, tier=5, price="30", overages_enabled=True)
    quota_on(bigger, limit=5000, overage_price=usd("0.02"))

    service_change_package(service=service, customer=customer, package=bigger)

    service.refresh_from_db()
    assert service.overages_enabled is True
    assert service.quotas[0]["limit"] == 5000
    assert service.quotas[0]["overage_price"] == "0.02"


def test_a_scheduled_downgrade_keeps_the_current_quotas_until_it_applies(customer):
    service = with_period(metered_service(customer, limit=100))
    smaller = target_of(service.package, tier=service.package.tier, price="5")
    quota_on(smaller, limit=10)

    change = service_change_package(service=service, customer=customer, package=smaller)

    service.refresh_from_db()
    assert service.quotas[0]["limit"] == 100
    assert change.quotas[0]["limit"] == 10


# --- recording ------------------------------------------------------------------


def test_the_same_key_records_usage_once(customer):
    service = metered_service(customer)
    at = timezone.now()

    first = record(service, "12.5", key="evt-1", at=at)
    again = record(service, "12.5", key="evt-1", at=at)

    assert first.created and not again.created
    assert again.record.pk == first.record.pk
    assert UsageRecord.objects.filter(service=service).count() == 1


def test_a_key_reused_for_other_usage_is_refused(customer):
    service = metered_service(customer)
    record(service, "5", key="evt-1")

    with pytest.raises(ValidationError) as refusal:
        record(service, "6", key="evt-1")

    assert refusal.value.code == ErrorCode.USAGE_KEY_REUSED


def test_the_same_key_on_two_services_is_two_records(customer):
    one, two = metered_service(customer), metered_service(customer)

    record(one, "5", key="evt-1")
    record(two, "5", key="evt-1")

    assert UsageRecord.objects.count() == 2


@pytest.mark.parametrize(
    ("quantity", "code"),
    [("0", "minutes"), ("-3", "minutes"), ("NaN", "minutes"), ("5", "storage")],
)
def test_it_refuses_usage_it_cannot_count(customer, quantity, code):
    service = metered_service(customer)

    with pytest.raises(ValidationError):
        record(service, quantity, key="k", code=code)

    assert not UsageRecord.objects.exists()


def test_it_refuses_usage_from_the_future(customer):
    service = metered_service(customer)

    with pytest.raises(ValidationError, match="future"):
        usage_record(service=service, quota_code="minutes", quantity=Decimal(1),
                     occurred_at=timezone.now() + timedelta(hours=1), idempotency_key="k",
                     source="provider")  # fmt: skip


# --- hard limits ------------------------------------------------------------------


def test_reaching_a_hard_limit_emails_the_customer_and_limits_on_the_provider_once(customer):
    service = metered_service(customer, limit=100)

    record(service, "60", key="a")
    assert not service.jobs.filter(action=ProvisioningJob.Action.LIMIT).exists()
    record(service, "50", key="b")
    record(service, "10", key="c")

    job = service.jobs.get(action=ProvisioningJob.Action.LIMIT)
    assert job.payload == {"quotas": [{"code": "minutes", "limit": 100, "used": "110.000000"}]}
    assert QuotaAlert.objects.filter(service=service).count() == 1
    assert quota_reached_emails(service) == 1


def test_the_manual_plugin_leaves_the_limit_to_staff(customer):
    service = metered_service(customer, limit=10)

    record(service, "11", key="a")

    job = service.jobs.get(action=ProvisioningJob.Action.LIMIT)
    assert provisioning_job_run(job_id=job.pk).startswith("waiting")
    job.refresh_from_db()
    assert job.status == ProvisioningJob.Status.WAITING
    assert "minutes" in job.result_message


def test_the_next_period_announces_its_limit_again(customer):
    service = with_period(metered_service(customer, limit=10))
    record(service, "11", key="a")
    Service.objects.filter(pk=service.pk).update(
        current_period_start=service.current_period_end,
        current_period_end=service.current_period_end + timedelta(days=30),
    )
    service.refresh_from_db()
    service.jobs.filter(action=ProvisioningJob.Action.LIMIT).update(
        status=ProvisioningJob.Status.SUCCEEDED
    )

    record(service, "11", key="b", at=service.current_period_start + timedelta(seconds=1))

    assert QuotaAlert.objects.filter(service=service).count() == 2
    assert service.jobs.filter(action=ProvisioningJob.Action.LIMIT).count() == 2


def test_usage_past_a_limit_with_overages_on_is_billed_not_stopped(customer):
    service = metered_service(customer, limit=10, overage_price=usd("0.50"),
                              overages_enabled=True)  # fmt: skip

    record(service, "25", key="a")

    assert not service.jobs.filter(action=ProvisioningJob.Action.LIMIT).exists()
    assert quota_reached_emails(service) == 0


# --- overage lines for the billing run ---------------------------------------------


def test_overage_is_the_usage_beyond_the_limit_times_the_price_sold(customer):
    service = with_period(metered_service(customer, limit=1000, overage_price=usd("0.03"),
                                          overages_enabled=True))  # fmt: skip
    start, end = service.current_period_start, service.current_period_end
    record(service, "800", key="a", at=start + timedelta(days=1))
    record(service, "333.5", key="b", at=start + timedelta(days=2))
    PackageQuota.objects.update(overage_price=Decimal("9"))  # a later catalog edit

    (line,) = service_overage_lines(service, start, end)

    assert line.quantity_over == Decimal("133.5")
    assert line.unit_price == Money("0.03", "USD")
    # 133.5 × 0.03 = 4.005, rounded half up once (half-even would give 4.00)
    assert line.amount == Money("4.01", "USD")
    assert "133.5 over" in line.description


def test_usage_outside_the_period_is_not_billed_in_it(customer):
    service = with_period(metered_service(customer, limit=10, overage_price=usd("1"),
                                          overages_enabled=True))  # fmt: skip
    start, end = service.current_period_start, service.current_period_end
    record(service, "10", key="in", at=start)
    Service.objects.filter(pk=service.pk).update(current_period_end=end + timedelta(days=30))
    service.refresh_from_db()
    record(service, "50", key="after", at=end)

    assert service_overage_lines(service, start, end) == []
    (line,) = service_overage_lines(service, end, end + timedelta(days=30))
    assert line.amount == Money("40.00", "USD")


def test_no_overage_is_billed_with_overages_off(customer):
    service = with_period(metered_service(customer, limit=10))
    record(service, "50", key="a")

    assert (
        service_overage_lines(service, service.current_period_start, service.current_period_end)
        == []
    )


def test_overage_lines_for_many_services_take_one_query(customer, django_assert_num_queries):
    services = [
        with_period(
            metered_service(customer, limit=10, overage_price=usd("2"), overages_enabled=True)
        )  # fmt: skip
        for _ in range(3)
    ]
    for number, service in enumerate(services):
        record(service, str(10 + number), key="a")
    periods = [(s, s.current_period_start, s.current_period_end) for s in services]

    with django_assert_num_queries(1):
        lines = overage_lines_for(periods)

    assert services[0].pk not in lines  # exactly at the limit: nothing over
    assert lines[services[1].pk][0].amount == Money("2.00", "USD")
    assert lines[services[2].pk][0].amount == Money("4.00", "USD")


# --- what the pages show ------------------------------------------------------------


def test_the_usage_of_the_current_period_is_counted_against_each_quota(customer):
    service = with_period(metered_service(customer, limit=100))
    record(service, "30", key="a")
    record(service, "12.5", key="b")

    since, (usage,) = service_usage(service, timezone.now())

    assert since == service.current_period_start
    assert usage.used == Decimal("42.5")
    assert usage.used_label == "42.5 minutes"
    assert usage.limit_label == "100 minutes"
    assert usage.meter_value == "42.500000" and usage.meter_max == "100"


# --- telling the customer and the provider -------------------------------------------


def test_the_quota_reached_email_names_the_quota_and_the_figures(customer, mailoutbox):
    service = metered_service(customer, limit=1000, name="Meet Pro")
    send_queued_notifications()
    mailoutbox.clear()

    record(service, "1250", key="a")
    send_queued_notifications()

    assert subjects(mailoutbox) == ["Quota reached: Meeting minutes on Meet Pro"]
    body = text(mailoutbox[0].body)
    assert "has used 1,250 minutes of the 1,000 minutes its package includes" in body


def test_the_webhook_plugin_sends_service_limit_signed(customer, webhook_backend):
    instance = WebhookInstanceFactory(url=webhook_backend.url, signing_secret="s")
    service = metered_service(
        customer,
        limit=10,
        provider_instance=instance,
        provisioning_options={"plan_code": "pro", "region": "", "send_settings": True},
        checkout_fields={"label": "room"},
    )
    service.refresh_from_db()
    assert service.status == Service.Status.ACTIVE

    record(service, "11", key="a")
    job = service.jobs.get(action=ProvisioningJob.Action.LIMIT)
    assert provisioning_job_run(job_id=job.pk) == "done"

    event = webhook_backend.requests[-1].json
    assert event["event"] == "service.limit"
    assert event["data"]["service_id"] == str(service.uuid)
    assert event["data"]["quotas"] == [{"code": "minutes", "limit": 10, "used": "11.000000"}]
    assert webhook_backend.requests[-1].headers["Idempotency-Key"] == str(job.idempotency_key)


def test_services_sold_before_the_snapshot_take_their_packages_quotas(customer):
    service = metered_service(customer, limit=300, overage_price=usd("0.10"),
                              overages_enabled=True)  # fmt: skip
    Service.objects.filter(pk=service.pk).update(quotas=[], overages_enabled=False)
    migration = importlib.import_module("subscriptions.migrations.0008_usage_records")

    migration.snapshot_existing_services(apps, None)

    service.refresh_from_db()
    assert service.overages_enabled is True
    assert service.quotas == [{"code": "minutes", "name": "Meeting minutes", "unit": "minutes",
                               "limit": 300, "overage_price": "0.10"}]  # fmt: skip


def test_usage_in_an_outside_trial_counts_in_the_trial_not_the_first_period(customer):
    service = metered_service(customer, limit=10, overage_price=usd("1"), overages_enabled=True,
                              trial_period=7, trial_interval="day",
                              trial_mode="outside")  # fmt: skip
    assert service.status == Service.Status.TRIAL
    record(service, "50", key="in-trial")

    since, (usage,) = service_usage(service, timezone.now())

    assert since == service.activated_at
    assert usage.used == Decimal(50)
    assert (
        service_overage_lines(service, service.current_period_start, service.current_period_end)
        == []
    )
