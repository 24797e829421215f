from __future__ import annotations

from django.urls import path

from . import views

app_name = "subscriptions"

urlpatterns = [
    path("order/<slug:catalog_slug>/<slug:package_slug>/", views.checkout, name="checkout"),
    path("account/", views.account, name="account"),
    path("account/profile/", views.account_profile, name="account_profile"),
    path("account/email/", views.account_email, name="account_email"),
    path("account/email/confirm/<str:token>/", views.email_confirm, name="email_confirm"),
    path("account/password/", views.AccountPasswordChangeView.as_view(), name="account_password"),
    path("account/close/", views.account_close, name="account_close"),
    path("account/orders/<int:pk>/", views.order_detail, name="order"),
    path("account/orders/<int:pk>/cancel/", views.order_cancel, name="order_cancel"),
    path("account/services/<int:pk>/", views.service_detail, name="service"),
    path("account/services/<int:pk>/cancel/", views.service_cancel, name="service_cancel"),
    path(
        "account/services/<int:pk>/cancel/undo/",
        views.service_cancel_undo,
        name="service_cancel_undo",
    ),
    path(
        "account/services/<int:pk>/change/",
        views.service_change_package,
        name="service_change_package",
    ),
    path(
        "account/services/<int:pk>/change/drop/",
        views.service_drop_change,
        name="service_drop_change",
    ),
    path("providers/<int:instance_pk>/usage/", views.provider_usage, name="provider_usage"),
]
