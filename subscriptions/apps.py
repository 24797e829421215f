from django.apps import AppConfig


class SubscriptionsConfig(AppConfig):
    name = "subscriptions"

    def ready(self) -> None:
        from catalog.models import Package, price_amounts_changed

        from . import receivers

        # The catalog admin announces new amounts; subscriptions answers with its confirm page.
        price_amounts_changed.connect(
            receivers.price_change_confirm_url,
            sender=Package,
            dispatch_uid="subscriptions-price-change",
        )
