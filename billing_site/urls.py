from __future__ import annotations

from django.conf import settings
from django.conf.urls.static import static
from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView

admin.site.site_header = "Billing administration"
admin.site.site_title = "Billing admin"

urlpatterns = [
    path("admin/", admin.site.urls),
    path("store/", include("storefront.urls")),
    path("accounts/", include("subscriptions.auth_urls")),
    path("", include("subscriptions.urls")),
    path("", include("payments.urls")),
    path("", RedirectView.as_view(pattern_name="storefront:index", permanent=False)),
] + static(settings.MEDIA_URL, document_root=settings.MEDIA_ROOT)
