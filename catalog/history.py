"""The audit trail of catalog edits, read as who changed which field from what to what.

django-simple-history writes a history row on every save and delete of the
catalog models and provider instances (their `history` managers). This module
turns those rows into entries staff can read: the package page's history (the
package and the rows edited on its inlines) and the whole trail, filtered by
user and date.

Writes that send no signal are not recorded: stock taken by orders
(`Package.objects.update`, catalog.stock) is not a staff edit, and the order it
belongs to records it.
"""

from __future__ import annotations

import heapq
import json
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from itertools import islice
from typing import Any

from django.db import models
from djmoney.models.fields import CurrencyField
from djmoney.money import Money

from provisioning.models import ManualInstance, ProviderInstance, WebhookInstance

from .currency import format_money
from .models import (
    Catalog,
    Feature,
    Package,
    PackageFeature,
    PackagePrice,
    PackagePriceAmount,
    PackageQuota,
    PackageScaling,
    Quota,
    Variant,
    VariantOption,
    VariantPrice,
    VariantPriceAmount,
)

# Every model whose edits are recorded, in the order the trail's filter lists them.
TRACKED_MODELS: list[type[models.Model]] = [
    Catalog,
    Package,
    PackagePrice,
    PackagePriceAmount,
    PackageFeature,
    PackageQuota,
    PackageScaling,
    Variant,
    VariantOption,
    VariantPrice,
    VariantPriceAmount,
    Feature,
    Quota,
    ProviderInstance,
    ManualInstance,
    WebhookInstance,
]

ACTIONS = {"+": "Created", "~": "Changed", "-": "Deleted"}
EMPTY = "—"


@dataclass
class FieldChange:
    label: str
    old: str
    new: str
    # A secret shows that it changed, never its value.
    secret: bool = False


@dataclass
class HistoryEntry:
    when: datetime
    user: Any
    action: str
    subject: str
    changes: list[FieldChange] = field(default_factory=list)


def history_model(model: type[models.Model]) -> Any:
    return model.history.model  # type: ignore[attr-defined]  # added by HistoricalRecords


def package_history(package_id: int) -> list[HistoryEntry]:
    """Every edit of the package and of the rows its page edits inline, newest first."""
    price_ids = (
        history_model(PackagePrice).objects.filter(package_id=package_id).values("id").distinct()
    )
    records = [
        history_model(Package).objects.filter(id=package_id),
        history_model(PackagePrice).objects.filter(package_id=package_id),
        history_model(PackagePriceAmount).objects.filter(package_price_id__in=price_ids),
        history_model(PackageFeature).objects.filter(package_id=package_id),
        history_model(PackageQuota).objects.filter(package_id=package_id),
        history_model(PackageScaling).objects.filter(from_package_id=package_id),
    ]
    return entries_for(
        [record for queryset in records for record in queryset.select_related("history_user")]
    )


def trail_page(
    *,
    user_id: int | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    offset: int = 0,
    limit: int = 50,
) -> tuple[list[HistoryEntry], bool]:
    """One page of the whole trail, newest first, and whether an older page follows."""
    querysets = []
    for model in TRACKED_MODELS:
        queryset = history_model(model).objects.select_related("history_user")
        if user_id is not None:
            queryset = queryset.filter(history_user_id=user_id)
        if since is not None:
            queryset = queryset.filter(history_date__gte=since)
        if until is not None:
            queryset = queryset.filter(history_date__lt=until)
        # The page's rows are among each model's newest offset + limit + 1.
        querysets.append(queryset.order_by("-history_date", "-history_id")[: offset + limit + 1])
    newest_first = heapq.merge(*querysets, key=lambda record: record.history_date, reverse=True)
    page = list(islice(newest_first, offset, offset + limit + 1))
    return entries_for(page[:limit]), len(page) > limit


def entries_for(records: Sequence[Any]) -> list[HistoryEntry]:
    """Readable entries for history rows of any tracked models, newest first."""
    by_model: dict[Any, list[Any]] = defaultdict(list)
    for record in records:
        by_model[type(record)].append(record)
    previous: dict[tuple[Any, int], Any] = {}
    for history, rows in by_model.items():
        previous.update(_previous_records(history, rows))
    labels = _ForeignKeyLabels()
    for record in records:
        labels.want(record)
        if (prior := previous.get((type(record), record.history_id))) is not None:
            labels.want(prior)
    entries = [
        HistoryEntry(
            when=record.history_date,
            user=record.history_user,
            action=ACTIONS[record.history_type],
            subject=_subject(record, labels),
            changes=_changes(record, previous.get((type(record), record.history_id)), labels),
        )
        for record in records
    ]
    entries.sort(key=lambda entry: entry.when, reverse=True)
    # The admin saves every row of a submitted page; a save that changed nothing
    # is not an edit.
    return [entry for entry in entries if entry.changes or entry.action != "Changed"]


def _previous_records(history: Any, rows: list[Any]) -> dict[tuple[Any, int], Any]:
    """The record before each of `rows` for the same object, read in one query."""
    pk_name = history.instance_type._meta.pk.attname
    object_ids = {getattr(row, pk_name) for row in rows}
    all_records = history.objects.filter(**{f"{pk_name}__in": object_ids}).order_by(
        pk_name, "history_date", "history_id"
    )
    previous: dict[tuple[Any, int], Any] = {}
    last: dict[Any, Any] = {}
    for record in all_records:
        object_id = getattr(record, pk_name)
        if object_id in last:
            previous[(history, record.history_id)] = last[object_id]
        last[object_id] = record
    return previous


def _shown_fields(record: Any) -> list[models.Field]:
    # Editable fields only: auto timestamps and currency companions (shown with
    # their amount) would be noise.
    return [
        field
        for field in record.instance_type._meta.concrete_fields
        if field.editable and not field.primary_key and not isinstance(field, CurrencyField)
    ]


def _changes(record: Any, prior: Any, labels: _ForeignKeyLabels) -> list[FieldChange]:
    if record.history_type == "-":
        return []
    secrets = set(getattr(record.instance_type, "secret_fields", ()))
    changes = []
    for model_field in _shown_fields(record):
        new = getattr(record, model_field.attname)
        old = getattr(prior, model_field.attname) if prior is not None else None
        if prior is not None and old == new:
            continue
        if prior is None and new in (None, "", [], {}):
            continue
        label = str(model_field.verbose_name)
        if model_field.name in secrets:
            changes.append(FieldChange(label, "", "set" if prior is None else "changed", True))
            continue
        changes.append(
            FieldChange(
                label,
                EMPTY if prior is None else _display(model_field, old, labels),
                _display(model_field, new, labels),
            )
        )
    if prior is not None and record.history_type == "~":
        changes.extend(_m2m_changes(record, prior, labels))
    return changes


def _m2m_changes(record: Any, prior: Any, labels: _ForeignKeyLabels) -> list[FieldChange]:
    changes = []
    for m2m_field in getattr(record, "_history_m2m_fields", []):
        delta = record.diff_against(prior, included_fields=[m2m_field.name])
        for change in delta.changes:
            target = m2m_field.related_model
            column = m2m_field.m2m_reverse_field_name()

            def names(rows: Iterable[dict], target=target, column=column) -> str:
                ids = sorted(row[column] for row in rows)
                return ", ".join(labels.label(target, pk) for pk in ids) or EMPTY

            labels.fetch(target, [row[column] for row in [*change.old, *change.new]])
            changes.append(
                FieldChange(str(m2m_field.verbose_name), names(change.old), names(change.new))
            )
    return changes


def _display(model_field: models.Field, value: Any, labels: _ForeignKeyLabels) -> str:
    if value is None or value == "":
        return EMPTY
    if isinstance(model_field, models.ForeignKey):
        return labels.label(model_field.related_model, value)
    if model_field.choices:
        return str(dict(model_field.flatchoices).get(value, value))
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, Money):
        return format_money(value)
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False, sort_keys=True)
    return str(value)


def _subject(record: Any, labels: _ForeignKeyLabels) -> str:
    model = record.instance_type
    kind = str(model._meta.verbose_name).capitalize()
    if model in (PackagePriceAmount, VariantPriceAmount):
        owner = "package_price" if model is PackagePriceAmount else "variant_price"
        option = labels.label(PackagePrice if owner == "package_price" else VariantPrice,
                              getattr(record, f"{owner}_id"))  # fmt: skip
        return f"{record.price_currency} amounts of “{option}”"
    if model is PackageFeature:
        return f"Feature “{labels.label(Feature, record.feature_id)}”"
    if model is PackageQuota:
        return f"Quota “{labels.label(Quota, record.quota_id)}”"
    if model is PackageScaling:
        return f"Scaling to “{labels.label(Package, record.to_package_id)}”"
    if model is PackagePrice:
        kind = "Pricing option"
    name = getattr(record, "name", "") or f"#{record.pk}"
    return f"{kind} “{name}”"


class _ForeignKeyLabels:
    """Names of related rows, read once per model for a whole page of entries.

    A row deleted since is named from its last history record.
    """

    def __init__(self) -> None:
        self.wanted: dict[type[models.Model], set[Any]] = defaultdict(set)
        self.names: dict[tuple[type[models.Model], Any], str] = {}

    def want(self, record: Any) -> None:
        for model_field in record.instance_type._meta.concrete_fields:
            if isinstance(model_field, models.ForeignKey):
                value = getattr(record, model_field.attname)
                if value is not None:
                    self.wanted[model_field.related_model].add(value)

    def fetch(self, model: type[models.Model], ids: Iterable[Any]) -> None:
        self.wanted[model].update(ids)

    def label(self, model: type[models.Model], pk: Any) -> str:
        key = (model, pk)
        if key not in self.names:
            self._load(model, self.wanted.pop(model, set()) | {pk})
        return self.names.get(key, f"#{pk}")

    def _load(self, model: type[models.Model], ids: set[Any]) -> None:
        ids = {pk for pk in ids if (model, pk) not in self.names}
        if not ids:
            return
        found = dict(model._base_manager.filter(pk__in=ids).values_list("pk", _name_of(model)))
        missing = ids - found.keys()
        if missing and hasattr(model, "history"):
            history = history_model(model)
            for pk, name in (
                history.objects.filter(**{f"{model._meta.pk.attname}__in": missing})
                .order_by("history_date")
                .values_list(model._meta.pk.attname, _name_of(model))
            ):
                found[pk] = f"{name} (deleted)"
        for pk, name in found.items():
            self.names[(model, pk)] = str(name)


def _name_of(model: type[models.Model]) -> str:
    names = {model_field.name for model_field in model._meta.concrete_fields}
    for candidate in ("name", "code", "username", "email"):
        if candidate in names:
            return candidate
    return model._meta.pk.attname
