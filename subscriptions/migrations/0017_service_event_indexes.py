"""Every event a billing run appends paid for two indexes no query needed: created_at alone (the
timeline reads by service, the admin's list of all events by id) and actor on rows that have
none (the system's). The actor's index now holds only the events a user did."""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('subscriptions', '0016_invoice_bill_to'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AlterField(
            model_name='serviceevent',
            name='actor',
            field=models.ForeignKey(blank=True, db_index=False, help_text='The staff user or customer who did it; empty for the system.', null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL),
        ),
        migrations.AlterField(
            model_name='serviceevent',
            name='created_at',
            field=models.DateTimeField(auto_now_add=True),
        ),
        migrations.AddIndex(
            model_name='serviceevent',
            index=models.Index(condition=models.Q(('actor__isnull', False)), fields=['actor'], name='serviceevent_actor'),
        ),
    ]
