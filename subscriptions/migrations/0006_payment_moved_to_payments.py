from django.db import migrations


class Migration(migrations.Migration):
    """Payments live in the payments app now; 0002 there copied every row."""

    dependencies = [
        ("subscriptions", "0005_invoice_numbers"),
        ("payments", "0002_copy_subscription_payments"),
    ]

    operations = [
        migrations.RemoveField(model_name="payment", name="invoice"),
        migrations.RemoveField(model_name="payment", name="recorded_by"),
        migrations.DeleteModel(name="Payment"),
    ]
