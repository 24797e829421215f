from django.db import migrations


def copy_payments(apps, schema_editor):
    """Every payment staff recorded before this app existed, as it was, with its date."""
    Old = apps.get_model("subscriptions", "Payment")
    New = apps.get_model("payments", "Payment")
    rows = []
    for old in Old.objects.select_related("invoice").order_by("pk").iterator():
        currency = old.amount_currency
        rows.append(
            New(
                invoice_id=old.invoice_id,
                customer_id=old.invoice.customer_id,
                amount=old.amount,
                amount_currency=currency,
                gateway=None,
                # The old methods: marked paid by staff, or a gateway that did not exist yet.
                method="other",
                transaction_id="",
                reference=old.reference,
                status="succeeded",
                credited=0,
                credited_currency=currency,
                refunded=0,
                refunded_currency=currency,
                received_at=old.created_at,
                recorded_by_id=old.recorded_by_id,
            )
        )
    New.objects.bulk_create(rows)
    # auto_now_add would stamp them today: keep when they were recorded.
    for new, old in zip(New.objects.order_by("pk"), Old.objects.order_by("pk"), strict=False):
        New.objects.filter(pk=new.pk).update(created_at=old.created_at)


def copy_back(apps, schema_editor):
    Old = apps.get_model("subscriptions", "Payment")
    New = apps.get_model("payments", "Payment")
    for new in New.objects.filter(status="succeeded").order_by("pk"):
        Old.objects.create(
            invoice_id=new.invoice_id,
            amount=new.amount,
            amount_currency=new.amount_currency,
            method="gateway" if new.gateway_id else "staff",
            reference=new.reference,
            recorded_by_id=new.recorded_by_id,
        )


class Migration(migrations.Migration):
    dependencies = [
        ("payments", "0001_initial"),
        ("subscriptions", "0005_invoice_numbers"),
    ]

    operations = [migrations.RunPython(copy_payments, copy_back)]
