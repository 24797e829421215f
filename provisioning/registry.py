"""The explicit list of provisioning plugins. See CONTRIBUTING.md to add one."""

from __future__ import annotations

from functools import cache

from django.utils.module_loading import import_string

PLUGINS = {
    "manual": "provisioning.plugins.manual.ManualPlugin",
    "webhook": "provisioning.plugins.webhook.WebhookPlugin",
}


@cache
def get_plugin(key: str):
    try:
        path = PLUGINS[key]
    except KeyError:
        raise LookupError(f"No provisioning plugin is registered as “{key}”.") from None
    return import_string(path)()


def all_plugins() -> list:
    return [get_plugin(key) for key in PLUGINS]
