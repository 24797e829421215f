"""Store each recurring service's billing anchor, so its periods stop drifting.

An existing service is anchored at the start of its first paid period (the
activation, or the trial end of an outside trial) when its current period
still lies on that cycle. A service whose periods already drifted (started on
the 31st, now renewing on the 28th) is anchored at its current period start
instead: it keeps the day it renews on now, and is never billed a short period.
"""

from django.db import migrations, models

from subscriptions.periods import anchored_period_end


def first_paid_period_start(service):
    if service.trial_period and service.trial_mode == "outside" and service.trial_ends_at:
        return service.trial_ends_at
    return service.activated_at


def fill_anchors(apps, schema_editor):
    Service = apps.get_model("subscriptions", "Service")
    services = Service.objects.filter(
        price_type="recurring", current_period_start__isnull=False, time_interval__gte=1
    ).only(
        "trial_period", "trial_mode", "trial_ends_at", "activated_at", "time_interval",
        "billing_period", "current_period_start", "current_period_end",
    )  # fmt: skip
    for service in services.iterator(chunk_size=2000):
        start, end = service.current_period_start, service.current_period_end
        anchor = first_paid_period_start(service)
        on_cycle = (
            anchor is not None
            and anchor <= start
            and anchored_period_end(anchor, start, service.time_interval, service.billing_period)
            == end
        )
        service.billing_anchor = anchor if on_cycle else start
        service.save(update_fields=["billing_anchor"])


class Migration(migrations.Migration):
    dependencies = [
        ("subscriptions", "0008_usage_records"),
    ]

    operations = [
        migrations.AddField(
            model_name="service",
            name="billing_anchor",
            field=models.DateTimeField(
                blank=True,
                help_text="Periods end on this day of the month (of the year for yearly "
                "options), or the month's last day when it is shorter.",
                null=True,
            ),
        ),
        migrations.RunPython(fill_anchors, migrations.RunPython.noop),
    ]
