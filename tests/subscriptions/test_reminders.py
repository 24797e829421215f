"""Reminders the billing run sends: a trial ending soon, a renewal coming up; each once."""

from __future__ import annotations

from datetime import timedelta

import pytest

from catalog.models import NotificationEvent
from payments.services import payment_record
from subscriptions.billing import BillingRun, services_run_billing
from subscriptions.lifecycle import service_request_cancellation
from subscriptions.models import Invoice, Service
from subscriptions.plan_changes import service_change_package
from tests.factories import active_service, target_of, with_period
from tests.support.jobs import send_queued_notifications
from tests.support.mail import subjects, text

pytestmark = pytest.mark.django_db

DAY = timedelta(days=1)


def fresh(service: Service, mailoutbox) -> Service:
    """The service with the emails of its setup sent and forgotten."""
    send_queued_notifications()
    mailoutbox.clear()
    service.refresh_from_db()
    return service


def reminders(run: BillingRun) -> tuple[int, int]:
    return run.trial_reminders, run.renewal_reminders


def run_and_send(now) -> BillingRun:
    run = services_run_billing(now=now)
    send_queued_notifications()
    return run


def trial_service(customer, mailoutbox, **kwargs) -> Service:
    service = active_service(
        customer, name="Video Pro", trial_period=7, trial_interval="day", **kwargs
    )
    return fresh(service, mailoutbox)


def test_a_renewal_reminder_is_sent_once_within_the_window(customer, mailoutbox):
    service = fresh(active_service(customer, name="Video Pro"), mailoutbox)
    end = service.current_period_end

    assert reminders(run_and_send(end - 3 * DAY - timedelta(seconds=1))) == (0, 0)
    assert mailoutbox == []

    assert reminders(run_and_send(end - 3 * DAY)) == (0, 1)
    assert reminders(run_and_send(end - 3 * DAY)) == (0, 0)
    assert reminders(run_and_send(end - DAY)) == (0, 0)

    assert subjects(mailoutbox) == [f"Renewal due {end:%Y-%m-%d}: Video Pro"]
    body = text(mailoutbox[0].body)
    assert f"renews {end:%Y-%m-%d}" in body
    assert "Amount: 12.00 USD" in body  # Monthly 10 + Europe 2
    service.refresh_from_db()
    assert service.renewal_reminder_sent_for == end


def test_the_next_period_gets_its_own_renewal_reminder(customer, mailoutbox):
    service = fresh(active_service(customer, name="Video Pro"), mailoutbox)
    end = service.current_period_end
    run_and_send(end - DAY)
    services_run_billing(now=end)  # bills the next period; no reminder for the one ended
    renewal = Invoice.objects.of_service(service.pk).get(kind=Invoice.Kind.RENEWAL)
    payment_record(method="bank_transfer", invoice=renewal, amount=renewal.total)
    send_queued_notifications()
    mailoutbox.clear()

    assert reminders(run_and_send(renewal.period_end - 2 * DAY)) == (0, 1)
    assert reminders(run_and_send(renewal.period_end - DAY)) == (0, 0)

    assert subjects(mailoutbox) == [f"Renewal due {renewal.period_end:%Y-%m-%d}: Video Pro"]


def test_no_renewal_reminder_for_a_service_cancelling_at_period_end(customer, mailoutbox):
    service = active_service(customer, name="Video Pro")
    service_request_cancellation(service=service, customer=customer, mode="period_end")
    service = fresh(service, mailoutbox)

    assert reminders(run_and_send(service.current_period_end - DAY)) == (0, 0)
    assert mailoutbox == []


@pytest.mark.parametrize("status", ["suspended", "cancelled", "terminated"])
def test_no_renewal_reminder_for_a_service_that_will_not_renew(customer, mailoutbox, status):
    service = fresh(active_service(customer, name="Video Pro"), mailoutbox)
    Service.objects.filter(pk=service.pk).update(status=status)

    assert reminders(run_and_send(service.current_period_end - DAY)) == (0, 0)
    assert mailoutbox == []


def test_a_renewal_reminder_quotes_the_downgrade_it_will_bill(customer, mailoutbox):
    service = with_period(active_service(customer, name="Video Pro", tier=2))
    target = target_of(service.package, tier=1, price="5", name="Monthly")
    service_change_package(service=service, customer=customer, package=target)
    service = fresh(service, mailoutbox)

    assert reminders(run_and_send(service.current_period_end - DAY)) == (0, 1)

    body = text(mailoutbox[0].body)
    assert f", as {target.name}." in body
    assert "Amount: 7.00 USD" in body  # Monthly 5 + Europe 2 as sold


def test_a_trial_ending_reminder_is_sent_once_within_the_window(customer, mailoutbox):
    service = trial_service(customer, mailoutbox)
    trial_end = service.trial_ends_at

    assert reminders(run_and_send(trial_end - 4 * DAY)) == (0, 0)
    assert mailoutbox == []

    assert reminders(run_and_send(trial_end - 3 * DAY)) == (1, 0)
    assert reminders(run_and_send(trial_end - DAY)) == (0, 0)
    run = run_and_send(trial_end)  # the trial's invoice, no reminder again
    assert (run.invoices, *reminders(run)) == (1, 0, 0)

    trial_subjects = [s for s in subjects(mailoutbox) if s.startswith("Your trial")]
    assert trial_subjects == [f"Your trial ends {trial_end:%Y-%m-%d}: Video Pro"]
    body = text(mailoutbox[0].body)
    assert "billed 12.00 USD per period" in body
    service.refresh_from_db()
    assert service.trial_reminder_sent_for == trial_end


def test_a_new_trial_end_gets_its_own_reminder(customer, mailoutbox):
    service = trial_service(customer, mailoutbox)
    run_and_send(service.trial_ends_at - DAY)
    extended = service.trial_ends_at + 5 * DAY
    Service.objects.filter(pk=service.pk).update(trial_ends_at=extended, next_bill_at=extended)

    assert reminders(run_and_send(extended - DAY)) == (1, 0)
    assert len(mailoutbox) == 2


def test_no_trial_reminder_for_a_trial_cancelled_at_its_end(customer, mailoutbox):
    service = active_service(customer, name="Video Pro", trial_period=7, trial_interval="day")
    service_request_cancellation(service=service, customer=customer, mode="period_end")
    service = fresh(service, mailoutbox)

    assert reminders(run_and_send(service.trial_ends_at - DAY)) == (0, 0)
    assert mailoutbox == []


def test_no_reminder_when_the_package_preferences_leave_it_out(customer, mailoutbox):
    wanted = [
        event
        for event in NotificationEvent.values
        if event not in (NotificationEvent.TRIAL_ENDING, NotificationEvent.RENEWAL_DUE)
    ]
    trial = trial_service(customer, mailoutbox, notification_preferences=wanted)
    renewing = fresh(
        active_service(customer, variant_code="zone", notification_preferences=wanted),
        mailoutbox,
    )

    assert reminders(run_and_send(trial.trial_ends_at - DAY)) == (0, 0)
    assert reminders(run_and_send(renewing.current_period_end - DAY)) == (0, 0)
    assert not [s for s in subjects(mailoutbox) if s.startswith(("Your trial ends", "Renewal"))]
    trial.refresh_from_db()
    assert trial.trial_reminder_sent_for == trial.trial_ends_at  # decided, not asked again


def test_the_window_is_the_billing_reminder_days_setting(customer, mailoutbox, settings):
    settings.BILLING_REMINDER_DAYS = 10
    service = fresh(active_service(customer, name="Video Pro"), mailoutbox)

    assert reminders(run_and_send(service.current_period_end - 11 * DAY)) == (0, 0)
    assert reminders(run_and_send(service.current_period_end - 10 * DAY)) == (0, 1)

    settings.BILLING_REMINDER_DAYS = 0
    other = fresh(active_service(customer, variant_code="zone"), mailoutbox)
    assert reminders(run_and_send(other.current_period_end - timedelta(seconds=1))) == (0, 0)


def test_the_billing_run_reports_the_reminders():
    run = BillingRun(
        invoices=1, trial_reminders=2, renewal_reminders=3, termination_warnings=4, terminated=5
    )
    assert str(run) == (
        "0 cancelled, 0 plan change(s) applied, 1 invoice(s) issued, 0 entered grace, "
        "0 suspension(s) queued, 4 termination warning(s) sent, 5 terminated for non-payment, "
        "2 trial-ending reminder(s) and 3 renewal reminder(s) sent. "
        "0 price change(s) applied, 0 price change notice(s) sent."
    )
