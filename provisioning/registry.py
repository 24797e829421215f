"""The explicit list of provisioning plugins. See CONTRIBUTING.md to add one."""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING

from django.utils.module_loading import import_string

from .plugins.base import Plugin

if TYPE_CHECKING:
    from .models import ProviderInstance

# key -> dotted path of the Plugin subclass; keys are stored on provider instances.
PLUGINS: dict[str, str] = {
    "manual": "provisioning.plugins.manual.ManualPlugin",
    "webhook": "provisioning.plugins.webhook.WebhookPlugin",
}


# What a package or service without a provider instance is set up with: staff, by hand.
DEFAULT_PLUGIN = "manual"


@cache
def get_plugin(key: str) -> Plugin:
    try:
        path = PLUGINS[key]
    except KeyError:
        raise LookupError(f"No provisioning plugin is registered as “{key}”.") from None
    plugin_class: type[Plugin] = import_string(path)
    return plugin_class()


def all_plugins() -> list[Plugin]:
    return [get_plugin(key) for key in PLUGINS]


def plugin_for(instance: ProviderInstance | None) -> tuple[Plugin, ProviderInstance | None]:
    """The plugin that sets up a package or service, with its concrete instance.

    No provider instance means the Manual plugin: staff do the work by hand.
    """
    if instance is None:
        return get_plugin(DEFAULT_PLUGIN), None
    instance = instance.get_real_instance()
    return instance.plugin, instance
