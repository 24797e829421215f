"""The service's customer column loses its own index: the (customer, package, status) index
starts with it and serves every lookup by customer, and each service a billing run updates
paid for both."""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('subscriptions', '0017_service_event_indexes'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AlterField(
            model_name='service',
            name='customer',
            field=models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.PROTECT, related_name='services', to=settings.AUTH_USER_MODEL),
        ),
    ]
