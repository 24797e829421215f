"""Admin forms of the catalog.

Staff edit JSON fields as plain text, amounts per store currency as columns
of a pricing row, and a plugin's package options as real form fields; every
rule still lives in the models and services, these forms only call them.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal

from django import forms
from django.conf import settings
from django.contrib.admin.widgets import AdminDateWidget, FilteredSelectMultiple
from django.contrib.auth import get_user_model
from django.core.exceptions import NON_FIELD_ERRORS, FieldDoesNotExist, ValidationError
from django.forms.models import BaseInlineFormSet
from django.forms.renderers import BaseRenderer, Jinja2, get_default_renderer
from django.template import TemplateDoesNotExist
from django.utils import timezone
from django.utils.html import format_html
from django.utils.text import capfirst
from djmoney.money import Money

from provisioning.models import ProviderInstance
from provisioning.registry import all_plugins, get_plugin

from .fields import validate_key_values
from .models import (
    NotificationEvent,
    Package,
    PackagePrice,
    PackagePriceAmount,
    VariantPrice,
    VariantPriceAmount,
    default_notification_preferences,
)
from .services import package_pricing_errors


class WidgetRenderer(BaseRenderer):
    """Renders Django's own widgets with its Jinja2 copies of their templates, the rest as usual.

    The package page has over 400 widgets (20 pricing rows of 15 fields); Django's
    template engine spends most of the page's time on them, Jinja2 a fraction of it.
    Django ships and tests both sets of templates, so the HTML is the same. The
    admin's own widget templates (the related-object wrapper, the two-box picker)
    exist only for Django's engine and still render through it.
    """

    def __init__(self):
        self.jinja2 = Jinja2()

    def get_template(self, template_name):
        try:
            return self.jinja2.get_template(template_name)
        except TemplateDoesNotExist:
            return get_default_renderer().get_template(template_name)


# One for every form: each renderer builds its template engines once.
WIDGET_RENDERER = WidgetRenderer()


class ModelErrorsForm(forms.ModelForm):
    """A model form that can show every error its model's clean() raises.

    Model.clean() may report on a field the form does not edit (a package's
    provisioning options, or anything on a row that only edits sort_order).
    Django raises ValueError for such an error, so it is shown as an error
    of the whole form instead, named after its field.
    """

    def _update_errors(self, errors):
        if hasattr(errors, "error_dict"):
            errors = ValidationError(self.errors_for_shown_fields(dict(errors.error_dict)))
        super()._update_errors(errors)

    def errors_for_shown_fields(self, error_dict: dict) -> dict:
        shown: dict = {}
        for field, messages in error_dict.items():
            if field == NON_FIELD_ERRORS or field in self.fields:
                shown.setdefault(field, []).extend(messages)
                continue
            try:
                label = capfirst(self._meta.model._meta.get_field(field).verbose_name)
            except FieldDoesNotExist:
                label = field
            shown.setdefault(NON_FIELD_ERRORS, []).extend(
                f"{label}: {message}" for message in ValidationError(messages).messages
            )
        return shown


# --- package settings and metadata as "key = value" lines -------------------


def _not_a_number(constant: str):
    raise ValueError(constant)


def parse_key_value(text: str):
    """true, false and numbers keep their JSON type; anything else (or a quoted value) is text."""
    try:
        value = json.loads(text, parse_constant=_not_a_number)
    except ValueError:
        return text
    return value if isinstance(value, (bool, int, float, str)) else text


def format_key_value(value) -> str:
    if not isinstance(value, str):
        return json.dumps(value)
    # Text that would read back as something else (a number, a quoted string,
    # a line break) is written quoted, so saving the form unchanged keeps it.
    if parse_key_value(value) != value or value != value.strip() or "\n" in value:
        return json.dumps(value, ensure_ascii=False)
    return value


class KeyValueField(forms.Field):
    """A flat map of simple values, edited as one “key = value” per line."""

    widget = forms.Textarea(attrs={"rows": 4, "class": "vLargeTextField", "spellcheck": "false"})
    default_validators = [validate_key_values]

    def __init__(self, **kwargs):
        kwargs.setdefault("required", False)
        super().__init__(**kwargs)

    def prepare_value(self, value):
        if isinstance(value, dict):
            return "\n".join(f"{key} = {format_key_value(item)}" for key, item in value.items())
        return value

    def to_python(self, value) -> dict:
        if isinstance(value, dict):
            return value
        mapping: dict = {}
        for number, line in enumerate((value or "").splitlines(), start=1):
            line = line.strip()
            if not line:
                continue
            key, equals, text = line.partition("=")
            key = key.strip()
            if not equals or not key:
                raise ValidationError(
                    "Line %(number)d: write “key = value”.",
                    code="invalid_line",
                    params={"number": number},
                )
            if key in mapping:
                raise ValidationError(
                    "Line %(number)d: “%(key)s” is already set above.",
                    code="duplicate_key",
                    params={"number": number, "key": key},
                )
            mapping[key] = parse_key_value(text.strip())
        return mapping

    def has_changed(self, initial, data) -> bool:
        try:
            return (initial or {}) != self.to_python(data)
        except ValidationError:
            return True


KEY_VALUE_HELP = (
    "One “key = value” per line. true, false and numbers are stored as such; "
    'put a value in double quotes ("42") to keep it as text.'
)


# --- the package's provisioning options ------------------------------------


def provider_instance_plugins() -> dict[str, str]:
    """Every provider instance's plugin key by id, read in one query.

    The page uses it to show the chosen instance's option fields in place.
    """
    return {
        str(instance.pk): instance.plugin.key
        for instance in ProviderInstance.objects.non_polymorphic()
    }


def options_prefix(plugin_key: str) -> str:
    return f"options-{plugin_key}"


@dataclass(frozen=True)
class OptionsSection:
    """One plugin's option fields on the Provisioning tab."""

    plugin: object
    form: forms.Form
    field_names: list[str]
    chosen: bool


class PackageTargetsWidget(FilteredSelectMultiple):
    """The admin's two-box picker, wrapped as filter_horizontal's is.

    Its script puts the boxes first in the select's parent element: without
    a wrapper of their own they would land before the field's label.
    """

    def render(self, name, value, attrs=None, renderer=None):
        select = super().render(name, value, attrs, renderer)
        return format_html('<div class="related-widget-wrapper">{}</div>', select)


class PackageTargetsField(forms.ModelMultipleChoiceField):
    def label_from_instance(self, package: Package) -> str:
        return f"{package.catalog.name} › {package.name} (tier {package.tier})"


class PackageAdminForm(ModelErrorsForm):
    default_renderer = WIDGET_RENDERER
    notification_preferences = forms.MultipleChoiceField(
        choices=NotificationEvent.choices,
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="The lifecycle notices sent to customers of this package.",
    )
    package_settings = KeyValueField(
        help_text="Handed to the provider with every service. " + KEY_VALUE_HELP
    )
    package_metadata = KeyValueField(
        help_text="Free data for integrations, such as external ids. " + KEY_VALUE_HELP
    )
    # Not named scalable_to: that relation has its own through model, which
    # the admin cannot edit directly; save_related() writes it via a service.
    scaling_targets = PackageTargetsField(
        queryset=Package.objects.select_related("catalog"),
        required=False,
        label="Scalable to",
        widget=PackageTargetsWidget("packages", is_stacked=False),
        help_text="Packages a service of this one may be upgraded or downgraded to; "
        "the tier decides which is which.",
    )

    class Meta:
        model = Package
        # Not provisioning_options (the plugin's own fields stand for it) nor
        # scalable_to (see scaling_targets).
        fields = [
            "catalog", "name", "slug", "service_type", "tier", "short_description",
            "description", "icon", "status", "hidden", "retired", "sort_order", "stock_qty",
            "oversell_enabled", "per_user_limit", "allow_quantity", "allow_cancellation",
            "trial_period", "trial_interval", "trial_mode", "grace_period", "grace_interval",
            "overages_enabled", "notification_preferences", "package_settings",
            "package_metadata", "variants", "provider_instance",
        ]  # fmt: skip

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.instance_plugins = provider_instance_plugins()
        if "provider_instance" in self.fields:
            self.fields["provider_instance"].label_from_instance = self._instance_label
        if not self.is_bound and not self.instance.pk:
            # The model's default does not reach a declared field on the add page:
            # a new package sends customers every lifecycle email until staff untick some.
            self.initial.setdefault("notification_preferences", default_notification_preferences())
        if not self.is_bound and self.instance.pk and "scaling_targets" in self.fields:
            self.initial.setdefault(
                "scaling_targets", [target.pk for target in self.instance.scalable_to.all()]
            )
        self.chosen_plugin = self._chosen_plugin()
        if self.chosen_plugin is not None:
            stored = self._stored_options(self.chosen_plugin.key)
            for name, field in self.chosen_plugin.package_options_form.base_fields.items():
                full_name = self._option_field_name(self.chosen_plugin.key, name)
                self.fields[full_name] = copy.deepcopy(field)
                if name in stored:
                    self.initial[full_name] = stored[name]

    @staticmethod
    def _instance_label(instance) -> str:
        return str(instance) if instance.is_active else f"{instance} (inactive)"

    @staticmethod
    def _option_field_name(plugin_key: str, name: str) -> str:
        return f"{options_prefix(plugin_key)}-{name}"

    def _chosen_plugin(self):
        """The plugin of the instance chosen on the page, as posted or as stored."""
        if "provider_instance" not in self.fields:
            return None
        plugin_key = self.instance_plugins.get(str(self["provider_instance"].value() or ""))
        return get_plugin(plugin_key) if plugin_key else None

    def _stored_options(self, plugin_key: str) -> dict:
        stored_key = self.instance_plugins.get(str(self.instance.provider_instance_id or ""))
        return (self.instance.provisioning_options or {}) if stored_key == plugin_key else {}

    def option_sections(self) -> list[OptionsSection]:
        """The option fields of every plugin, the chosen one's being fields of this form.

        The other plugins' fields are blank forms with the same names: the
        page shows them in place when staff pick an instance of that plugin.
        """
        sections = []
        for plugin in all_plugins():
            names = list(plugin.package_options_form.base_fields)
            if self.chosen_plugin is not None and plugin.key == self.chosen_plugin.key:
                full_names = [self._option_field_name(plugin.key, name) for name in names]
                sections.append(OptionsSection(plugin, self, full_names, chosen=True))
            else:
                form = plugin.package_options_form(
                    prefix=self.add_prefix(options_prefix(plugin.key)),
                    initial=self._stored_options(plugin.key),
                )
                sections.append(OptionsSection(plugin, form, names, chosen=False))
        return sections

    def option_field_names(self) -> list[str]:
        if self.chosen_plugin is None:
            return []
        prefix = f"{options_prefix(self.chosen_plugin.key)}-"
        return [name for name in self.fields if name.startswith(prefix)]

    def clean_notification_preferences(self) -> list[str]:
        chosen = set(self.cleaned_data["notification_preferences"])
        return [event for event in NotificationEvent.values if event in chosen]

    def clean_scaling_targets(self):
        targets = self.cleaned_data["scaling_targets"]
        if self.instance.pk and any(target.pk == self.instance.pk for target in targets):
            raise ValidationError(
                "A package cannot scale to itself: unselect “%(name)s”.",
                params={"name": self.instance.name},
            )
        return targets

    def clean(self):
        cleaned_data = super().clean()
        if "provider_instance" in self.fields and not self.has_error("provider_instance"):
            self._clean_provisioning_options(cleaned_data.get("provider_instance"))
        return cleaned_data

    def _clean_provisioning_options(self, instance) -> None:
        """Validate the options with the plugin's own form; its errors go next to its fields."""
        if instance is None:
            self.instance.provisioning_options = {}
            return
        plugin = instance.plugin
        options_form = plugin.package_options_form(
            data=self.data, prefix=self.add_prefix(options_prefix(plugin.key))
        )
        if options_form.is_valid():
            self.instance.provisioning_options = plugin.serialize_package_options(
                options_form.cleaned_data
            )
            return
        for name, messages in options_form.errors.items():
            field = (
                "provider_instance"
                if name == NON_FIELD_ERRORS or self.chosen_plugin is None
                else self._option_field_name(plugin.key, name)
            )
            # This form's copy of the field has already reported its own errors.
            if not self.has_error(field):
                self.add_error(field, messages)

    def errors_for_shown_fields(self, error_dict: dict) -> dict:
        # Package.clean() checks the options too; when this form has shown
        # their errors next to the fields, its summary would only repeat them.
        options_errors = error_dict.pop("provisioning_options", [])
        already_shown = self.has_error("provider_instance") or any(
            self.has_error(name) for name in self.option_field_names()
        )
        if options_errors and not already_shown:
            error_dict.setdefault("provider_instance", []).extend(options_errors)
        return super().errors_for_shown_fields(error_dict)


class PackageOrderForm(ModelErrorsForm):
    """A row that only reorders a package (catalog page, package list)."""

    class Meta:
        model = Package
        fields = ["sort_order"]


# --- amounts per store currency ---------------------------------------------

AMOUNT_LABELS = {"price": "Price", "setup_fee": "Setup fee", "signup_fee": "Signup fee"}
# What each fee means, shown where staff type it: a customer ordering three units gets
# three services, so pays the setup fee three times and the signup fee once.
AMOUNT_HELP = {
    "price": "Per billing period, or once.",
    "setup_fee": "Charged once per service (each unit).",
    "signup_fee": "Charged once per order.",
}


def amount_field_name(part: str, currency: str) -> str:
    return f"{part}_{currency}"


def amount_field_names(parts: tuple[str, ...]) -> list[str]:
    return [
        amount_field_name(part, currency)
        for currency in settings.BILLING_CURRENCIES
        for part in parts
    ]


class InlineRowForm(forms.ModelForm):
    """A row of an admin inline, cheap to show and to post back unchanged."""

    default_renderer = WIDGET_RENDERER

    def _get_validation_exclusions(self):
        exclude = super()._get_validation_exclusions()
        if self.instance.pk is not None and not self.has_changed():
            # The formset saves only changed rows, so a stored row left as it was
            # cannot break a database constraint; checking one costs a query (and
            # a savepoint) per constraint and row. Its clean() still runs.
            exclude.update(field.name for field in self.instance._meta.fields)
        return exclude


class CurrencyAmountsForm(InlineRowForm):
    """A priced row with, for each store currency, fields saved as one amount row.

    Each field belongs to one currency, shown in its label: the currency of
    an amount can never be changed here. Clearing a currency's price deletes
    its amount. The amount model's own clean() checks every value.
    """

    amount_model: type[PackagePriceAmount] | type[VariantPriceAmount]
    amount_parent: str  # the amount's foreign key to this row
    amount_parts: tuple[str, ...] = ("price", "setup_fee")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.currencies = list(settings.BILLING_CURRENCIES)
        self.stored_amounts = (
            {amount.currency: amount for amount in self.instance.amounts.all()}
            if self.instance.pk
            else {}
        )
        self.amounts_to_save: list = []
        self.amounts_to_delete: list = []
        for currency in self.currencies:
            stored = self.stored_amounts.get(currency)
            for part in self.amount_parts:
                name = amount_field_name(part, currency)
                label = f"{AMOUNT_LABELS[part]} ({currency})"
                self.fields[name] = forms.DecimalField(
                    label=label,
                    help_text=AMOUNT_HELP[part],
                    required=False,
                    max_digits=12,
                    decimal_places=2,
                    # A grid cell has no <label>: the input names itself.
                    widget=forms.NumberInput(
                        attrs={"step": "0.01", "class": "amount-input", "aria-label": label}
                    ),
                )
                if stored is not None:
                    self.initial[name] = getattr(stored, part).amount

    def _post_clean(self):
        super()._post_clean()
        # After construct_instance(): amounts are checked against the row as
        # posted (a new type or enabled flag), not as it was stored.
        for currency in self.currencies:
            self._clean_amount(currency)

    def _clean_amount(self, currency: str) -> None:
        names = {part: amount_field_name(part, currency) for part in self.amount_parts}
        if any(self.has_error(name) for name in names.values()):
            return
        values = {part: self.cleaned_data.get(name) for part, name in names.items()}
        stored = self.stored_amounts.get(currency)
        if values["price"] is None:
            if any(value for part, value in values.items() if part != "price"):
                self.add_error(
                    names["price"], f"Enter the price in {currency} too, or clear its fees."
                )
            elif stored is not None:
                self.amounts_to_delete.append(stored)
            return
        amounts = {
            part: Money(value if value is not None else Decimal("0"), currency)
            for part, value in values.items()
        }
        unchanged = stored is not None and all(
            getattr(stored, part) == money for part, money in amounts.items()
        )
        amount = stored if stored is not None else self.amount_model()
        setattr(amount, self.amount_parent, self.instance)
        for part, money in amounts.items():
            setattr(amount, part, money)
        try:
            # An amount left as stored is not written again, so its database
            # constraints cannot fail (each check is a query); its clean() runs
            # against the row as posted.
            amount.full_clean(
                exclude=[self.amount_parent],
                validate_unique=False,
                validate_constraints=not unchanged,
            )
        except ValidationError as error:
            for field, messages in error.message_dict.items():
                self.add_error(names.get(field), messages)
        else:
            if not unchanged:
                self.amounts_to_save.append(amount)

    def amount_rows(self) -> list[tuple[str, list]]:
        """The amount fields by currency, in the order of amount_parts: one grid row each."""
        return [
            (currency, [self[amount_field_name(part, currency)] for part in self.amount_parts])
            for currency in self.currencies
        ]

    def priced_currencies(self) -> list[str]:
        """The currencies this row will have an amount in once saved."""
        return [
            currency
            for currency in self.currencies
            if self.cleaned_data.get(amount_field_name("price", currency)) is not None
        ]

    def _save_m2m(self):
        super()._save_m2m()
        for amount in self.amounts_to_delete:
            amount.delete()
        for amount in self.amounts_to_save:
            setattr(amount, self.amount_parent, self.instance)
            amount.save()


class PackagePriceInlineForm(CurrencyAmountsForm):
    amount_model = PackagePriceAmount
    amount_parent = "package_price"
    amount_parts = ("price", "setup_fee", "signup_fee")

    class Meta:
        model = PackagePrice
        fields = ["name", "type", "time_interval", "billing_period", "enabled", "sort_order"]


class StoredRowField(forms.ModelChoiceField):
    """A row's hidden id, found among the rows its formset has already read.

    Django's own field reads each posted row again, a query per row; this one
    also refuses an id that is not one of this formset's rows.
    """

    def __init__(self, rows: dict, **kwargs):
        super().__init__(queryset=None, **kwargs)
        self.rows = rows

    def to_python(self, value):
        if value in self.empty_values:
            return None
        try:
            return self.rows[int(value)]
        except (KeyError, TypeError, ValueError):
            raise ValidationError(
                self.error_messages["invalid_choice"],
                code="invalid_choice",
                params={"value": value},
            ) from None


class StoredRowsFormSet(BaseInlineFormSet):
    """An inline formset whose posted rows cost no query each (see StoredRowField)."""

    def add_fields(self, form, index):
        super().add_fields(form, index)
        name = self.model._meta.pk.name
        field = form.fields.get(name)
        if self.is_bound and type(field) is forms.ModelChoiceField:
            if not hasattr(self, "stored_rows"):
                self.stored_rows = {row.pk: row for row in self.get_queryset()}
            form.fields[name] = StoredRowField(
                self.stored_rows, initial=field.initial, required=False, widget=field.widget
            )


class PackagePriceFormSet(StoredRowsFormSet):
    """Checks the rules across a package's pricing options as staff are about to save them."""

    def clean(self):
        super().clean()
        if any(self.errors):
            return  # the rows' own errors first: the rules below read valid rows
        kept = [
            (form.instance, form.priced_currencies())
            for form in self.forms
            if not (self.can_delete and self._should_delete_form(form))
            and (form.instance.pk is not None or form.has_changed())
        ]
        # self.instance is the package with the status staff just posted.
        errors = package_pricing_errors(package=self.instance, prices=kept)
        if errors:
            raise ValidationError(errors)


class VariantPriceInlineForm(CurrencyAmountsForm):
    amount_model = VariantPriceAmount
    amount_parent = "variant_price"

    class Meta:
        model = VariantPrice
        fields = ["name"]


class AuditTrailFilterForm(forms.Form):
    """Narrows the audit trail to one staff member and a range of days (both inclusive)."""

    user = forms.ModelChoiceField(
        queryset=get_user_model().objects.filter(is_staff=True).order_by("email"),
        required=False,
        empty_label="Anyone",
    )
    since = forms.DateField(required=False, label="From", widget=AdminDateWidget)
    until = forms.DateField(required=False, label="To", widget=AdminDateWidget)
    page = forms.IntegerField(
        required=False, min_value=1, max_value=10_000, widget=forms.HiddenInput
    )

    def clean(self):
        cleaned = super().clean()
        since, until = cleaned.get("since"), cleaned.get("until")
        if since and until and since > until:
            raise ValidationError("“From” must be on or before “To”.")
        return cleaned

    def filters(self) -> dict:
        """Keyword arguments for catalog.history.trail_page, days read in the site's time zone."""
        data = self.cleaned_data
        until = data.get("until")
        return {
            "user_id": data["user"].pk if data.get("user") else None,
            "since": _start_of(data["since"]) if data.get("since") else None,
            "until": _start_of(until + timedelta(days=1)) if until else None,
            "page": data.get("page") or 1,
        }


def _start_of(day: date) -> datetime:
    return timezone.make_aware(datetime.combine(day, time.min))
