"""The timeline's (service, -created_at, -id) index serves lookups by service: drop the
service column's own index, which every event a billing run appends paid for."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('subscriptions', '0014_run_at_scale'),
    ]

    operations = [
        migrations.AlterField(
            model_name='serviceevent',
            name='service',
            field=models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name='events', to='subscriptions.service'),
        ),
    ]
