from __future__ import annotations

from django.urls import path

from . import views

app_name = "storefront"

# "-" is not a slug staff give a catalog, so the store's own URLs live under it
# and never shadow a catalog or package.
urlpatterns = [
    path("", views.store_index, name="index"),
    path("-/currency/", views.set_currency_view, name="set_currency"),
    path("-/ping/", views.ping, name="ping"),
    path("<slug:catalog_slug>/", views.catalog_detail, name="catalog"),
    path("<slug:catalog_slug>/<slug:package_slug>/", views.package_detail, name="package"),
]
