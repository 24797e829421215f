import gc
import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "billing_site.settings.base")

application = get_wsgi_application()

# What is loaded by now (Django, the apps, their models and admin) lives as long as the
# process. Frozen out of the collector's sight, a full collection no longer walks it in
# the middle of a request (it was most of bench/checkout.py's p99), and a server's forked
# workers keep sharing its memory pages instead of touching them to collect.
gc.collect()
gc.freeze()
