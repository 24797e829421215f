from __future__ import annotations

from django.urls import path

from . import views

app_name = "storefront"

urlpatterns = [
    path("", views.store_index, name="index"),
    path("<slug:catalog_slug>/", views.catalog_detail, name="catalog"),
    path("<slug:catalog_slug>/<slug:package_slug>/", views.package_detail, name="package"),
]
