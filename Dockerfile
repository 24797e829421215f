# One image for every process of the store: web servers, db_worker processes, the billing run.
FROM python:3.11-slim
# WeasyPrint (invoice PDFs) needs Pango.
RUN apt-get update \
    && apt-get install -y --no-install-recommends libpango-1.0-0 libpangoft2-1.0-0 \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /srv/billing
COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt
COPY . .
# Static files are collected into the image and served by WhiteNoise from the web servers.
RUN SECRET_KEY=collectstatic-only ALLOWED_HOSTS=localhost \
    DJANGO_SETTINGS_MODULE=billing_site.settings.production \
    python manage.py collectstatic --noinput -v0
ENV DJANGO_SETTINGS_MODULE=billing_site.settings.production PYTHONUNBUFFERED=1
EXPOSE 8000
CMD ["gunicorn", "billing_site.wsgi:application", "--bind", "0.0.0.0:8000", "--workers", "2"]
