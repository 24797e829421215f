"""Staff edit the catalog here: a tabbed package page, per-currency pricing, variants."""

from __future__ import annotations

from dataclasses import dataclass, field

from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.utils import flatten
from django.core.exceptions import PermissionDenied
from django.db.models import Count, Q
from django.http import HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.defaultfilters import pluralize
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join

from . import history, selectors
from .forms import (
    AMOUNT_HELP,
    AMOUNT_LABELS,
    AuditTrailFilterForm,
    InlineRowForm,
    PackageAdminForm,
    PackageOrderForm,
    PackagePriceFormSet,
    PackagePriceInlineForm,
    StoredRowsFormSet,
    VariantPriceInlineForm,
    amount_field_names,
)
from .models import (
    SOLD_OUT,
    UNLIMITED,
    Catalog,
    Feature,
    Package,
    PackageFeature,
    PackagePrice,
    PackagePriceAmount,
    PackageQuota,
    PriceType,
    Quota,
    Variant,
    VariantOption,
    VariantPrice,
    price_amounts_changed,
)
from .services import package_clone, package_set_scaling_targets

# Past this many, warnings after a save are summed up: the page lists them all.
MAX_WARNING_MESSAGES = 5

WARNINGS_TEMPLATE = "admin/catalog/change_form_with_warnings.html"

AUDIT_TRAIL_PAGE_SIZE = 50
# Where save_related leaves the page that follows a price change, for response_change.
PRICE_CHANGE_URL = "catalog_price_change_url"


def _recurring_amounts(package: Package) -> dict[tuple[int, str], object]:
    return {
        (amount.package_price_id, amount.currency): amount.price
        for amount in PackagePriceAmount.objects.filter(
            package_price__package=package, package_price__type=PriceType.RECURRING
        )
    }


def warn_after_save(request, warnings: list[str]) -> None:
    for warning in warnings[:MAX_WARNING_MESSAGES]:
        messages.warning(request, warning)
    if len(warnings) > MAX_WARNING_MESSAGES:
        messages.warning(
            request,
            f"… and {len(warnings) - MAX_WARNING_MESSAGES} more warnings, listed on the page.",
        )


class CachedChoicesInline(admin.TabularInline):
    """Reads each foreign key's choices once per page instead of once per row."""

    form = InlineRowForm
    formset = StoredRowsFormSet

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        formfield = super().formfield_for_foreignkey(db_field, request, **kwargs)
        if formfield is not None:
            # Every row's copy of the field shares this evaluated list. (iter()
            # skips the COUNT query list() would run for a length hint.)
            formfield.choices = list(iter(formfield.choices))
        return formfield


class CurrencyAmountsInline(admin.TabularInline):
    """Rows whose form adds price columns for each store currency (see CurrencyAmountsForm)."""

    def get_fields(self, request, obj=None):
        return [*self.form._meta.fields, *amount_field_names(self.form.amount_parts)]

    def get_formset(self, request, obj=None, **kwargs):
        # The form adds the amount fields itself, per store currency; the
        # formset factory only knows the model's fields.
        kwargs.setdefault("fields", self.form._meta.fields)
        return super().get_formset(request, obj, **kwargs)


# --- packages -----------------------------------------------------------------


class PackagePriceInline(CurrencyAmountsInline):
    model = PackagePrice
    verbose_name = "pricing option"
    form = PackagePriceInlineForm
    formset = PackagePriceFormSet
    extra = 1
    tab = "pricing"
    # One row per option, its amounts a small grid of a line per currency: a column
    # per currency and fee would not fit the screen (see the template).
    template = "admin/catalog/package/pricing_inline.html"
    amount_parts = [(part, AMOUNT_LABELS[part], AMOUNT_HELP[part]) for part in form.amount_parts]

    def get_queryset(self, request):
        # The row title names the package; amounts fill the currency columns.
        return super().get_queryset(request).select_related("package").prefetch_related("amounts")


class PackageFeatureInline(CachedChoicesInline):
    model = PackageFeature
    fields = ["feature", "value"]
    extra = 0
    tab = "features"

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("feature")


class PackageQuotaInline(CachedChoicesInline):
    model = PackageQuota
    fields = ["quota", "limit", "overage_price"]
    extra = 0
    tab = "features"

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("quota")


class StockFilter(admin.SimpleListFilter):
    title = "stock"
    parameter_name = "stock"

    def lookups(self, request, model_admin):
        return [("unlimited", "Unlimited"), ("in_stock", "In stock"), ("sold_out", "Sold out")]

    def queryset(self, request, queryset):
        match self.value():
            case "unlimited":
                return queryset.filter(stock_qty=UNLIMITED)
            case "in_stock":
                return queryset.exclude(stock_qty=UNLIMITED).exclude(SOLD_OUT)
            case "sold_out":
                return queryset.sold_out()
        return queryset


@dataclass
class Tab:
    """One tab of the package page: fieldsets and inlines shown together."""

    id: str
    label: str
    fieldsets: list = field(default_factory=list)
    inline_formsets: list = field(default_factory=list)
    field_names: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    has_errors: bool = False
    intro: str = ""


PACKAGE_TABS = [
    ("summary", "Summary"),
    ("pricing", "Pricing"),
    ("variants", "Variants"),
    ("features", "Features & quotas"),
    ("provisioning", "Provisioning"),
    ("scaling", "Scaling"),
]

PRICING_INTRO = (
    "One row per pricing option, with an explicit amount in each store currency "
    "(no conversion). Leave a currency's price empty not to sell the option in it; "
    "every paid option is priced in {default}, the default currency. Free options have "
    "no amounts."
)


def _tab_of(fieldset) -> str:
    """Fieldsets name their tab with a `tab-<id>` class; the rest go to Summary."""
    tab_classes = [name for name in fieldset.classes.split() if name.startswith("tab-")]
    return tab_classes[0].removeprefix("tab-") if tab_classes else "summary"


def package_tabs(adminform, inline_admin_formsets, warnings: dict[str, list[str]]) -> list[Tab]:
    form = adminform.form
    tabs = {tab_id: Tab(tab_id, label) for tab_id, label in PACKAGE_TABS}
    tabs["pricing"].intro = PRICING_INTRO.format(default=settings.BILLING_DEFAULT_CURRENCY)
    for fieldset in adminform:
        tab = tabs[_tab_of(fieldset)]
        tab.fieldsets.append(fieldset)
        tab.field_names.extend(flatten(fieldset.fields))
    tabs["provisioning"].field_names.extend(form.option_field_names())
    for inline_admin_formset in inline_admin_formsets:
        tab = tabs[getattr(inline_admin_formset.opts, "tab", "summary")]
        tab.inline_formsets.append(inline_admin_formset)
        formset = inline_admin_formset.formset
        if formset.is_bound and (any(formset.errors) or formset.non_form_errors()):
            tab.has_errors = True
    for tab in tabs.values():
        tab.has_errors = tab.has_errors or any(name in form.errors for name in tab.field_names)
        tab.warnings = warnings.get(tab.id, [])
    return list(tabs.values())


@admin.register(Package)
class PackageAdmin(admin.ModelAdmin):
    form = PackageAdminForm
    inlines = [PackagePriceInline, PackageFeatureInline, PackageQuotaInline]
    readonly_fields = ["uuid", "ulid"]
    prepopulated_fields = {"slug": ("name",)}
    filter_horizontal = ["variants"]
    radio_fields = {"allow_quantity": admin.VERTICAL, "trial_mode": admin.VERTICAL}
    save_on_top = True
    fieldsets = [
        ("Package", {"classes": ["tab-summary"], "fields": [
            "catalog", "name", "slug", "service_type", "tier", "short_description",
            "description", "icon", ("uuid", "ulid"),
        ]}),
        ("Visibility", {"classes": ["tab-summary"], "fields": [
            "status", "hidden", "retired", "sort_order",
        ]}),
        ("Stock and ordering", {"classes": ["tab-summary"], "fields": [
            ("stock_qty", "oversell_enabled"), "per_user_limit", "allow_quantity",
            "allow_cancellation",
        ]}),
        ("Trial, grace and overages", {"classes": ["tab-summary"], "fields": [
            ("trial_period", "trial_interval"), "trial_mode", ("grace_period", "grace_interval"),
            "overages_enabled",
        ], "description": (
            "A trial counts from when the service is ready. An inside trial as long as a "
            "billing period or longer cannot be the start of a period that is over when it "
            "ends: its first paid period begins when the trial ends, as after an outside "
            "trial, so no invoice is ever issued for time already past."
        )}),
        ("Notifications and data", {"classes": ["tab-summary"], "fields": [
            "notification_preferences", "package_settings", "package_metadata",
        ]}),
        ("Variants", {"classes": ["tab-variants"], "fields": ["variants"], "description": (
            "Options customers pick when ordering. A variant price applies to a pricing "
            "option only when their names match exactly."
        )}),
        ("Provider", {"classes": ["tab-provisioning"], "fields": ["provider_instance"],
            "description": "The instance that sets up services of this package; "
            "its plugin's options appear below.",
        }),
        ("Scaling", {"classes": ["tab-scaling"], "fields": ["scaling_targets"]}),
    ]  # fmt: skip

    list_display = ["name", "catalog", "service_type", "status", "hidden", "retired",
                    "stock", "price", "sort_order"]  # fmt: skip
    list_editable = ["sort_order"]
    list_filter = ["catalog", "service_type", "status", "hidden", "retired", StockFilter]
    search_fields = ["name", "slug", "short_description", "uuid", "ulid"]
    actions = ["clone_packages"]

    def get_queryset(self, request):
        # The price column reads each package's primary pricing option.
        return (
            super()
            .get_queryset(request)
            .select_related("catalog")
            .prefetch_related("prices__amounts")
        )

    def get_changelist_form(self, request, **kwargs):
        kwargs.setdefault("form", PackageOrderForm)
        return super().get_changelist_form(request, **kwargs)

    @admin.display(description="stock", ordering="stock_qty")
    def stock(self, package: Package) -> str:
        if not package.has_stock:
            return "unlimited"
        if package.is_sold_out:
            return "sold out"
        return f"{package.stock_qty} (oversell)" if package.oversell_enabled else package.stock_qty

    @admin.display(description="price")
    def price(self, package: Package) -> str:
        primary = package.primary_price
        if primary is None:
            return "–"
        if primary.is_free:
            return "free"
        return f"{package.price} / {primary.period_label()}"

    @admin.action(description="Clone selected packages (copies are drafts)")
    def clone_packages(self, request, queryset):
        copies = [package_clone(package=package) for package in queryset]
        links = format_html_join(
            ", ",
            '<a href="{}">{}</a>',
            (
                (reverse("admin:catalog_package_change", args=[copy.pk]), copy.name)
                for copy in copies
            ),
        )
        self.message_user(
            request,
            format_html("Cloned {} package(s) as drafts: {}.", len(copies), links),
            messages.SUCCESS,
        )

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        adminform = context["adminform"]
        form = adminform.form
        warnings = {}
        if obj is not None and obj.pk:
            stored = selectors.package_for_warnings(obj.pk)
            warnings = {
                "variants": selectors.unmatched_variant_pairs(package=stored),
                "scaling": selectors.scaling_mismatches(package=stored),
            }
        context.update(
            package_tabs=package_tabs(adminform, context["inline_admin_formsets"], warnings),
            package_warning_count=sum(len(items) for items in warnings.values()),
            provisioning_sections=[
                (section, self._options_adminform(section)) for section in form.option_sections()
            ],
            provider_instance_plugins=form.instance_plugins,
        )
        return super().render_change_form(request, context, add, change, form_url, obj)

    def _options_adminform(self, section) -> helpers.AdminForm:
        title = f"{section.plugin.name} plugin options"
        return helpers.AdminForm(
            section.form, [(title, {"fields": section.field_names})], {}, model_admin=self
        )

    def response_change(self, request, obj):
        response = super().response_change(request, obj)
        confirm_url = getattr(request, PRICE_CHANGE_URL, None)
        return HttpResponseRedirect(confirm_url) if confirm_url else response

    def get_urls(self):
        trail = path(
            "audit-trail/",
            self.admin_site.admin_view(self.audit_trail_view),
            name="catalog_audit_trail",
        )
        # Before the model's own patterns, whose "<object_id>/" would take the path.
        return [trail, *super().get_urls()]

    def history_view(self, request, object_id, extra_context=None):
        """The package's edits and those made on its inlines, each field old → new."""
        package = get_object_or_404(Package, pk=object_id)
        if not self.has_view_or_change_permission(request, package):
            raise PermissionDenied
        context = {
            **self.admin_site.each_context(request),
            "title": f"History: {package}",
            "subtitle": None,
            "opts": self.opts,
            "object": package,
            "entries": history.package_history(package.pk),
            **(extra_context or {}),
        }
        return TemplateResponse(request, "admin/catalog/package/history.html", context)

    def audit_trail_view(self, request):
        """Every recorded catalog and provider instance edit, filtered by user and date."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        form = AuditTrailFilterForm(request.GET or None)
        entries: list[history.HistoryEntry] = []
        has_next = False
        page = 1
        if form.is_valid() or not form.is_bound:
            filters = form.filters() if form.is_bound else {}
            page = filters.pop("page", 1)
            entries, has_next = history.trail_page(
                **filters, offset=(page - 1) * AUDIT_TRAIL_PAGE_SIZE, limit=AUDIT_TRAIL_PAGE_SIZE
            )
        query = request.GET.copy()
        query.pop("page", None)
        context = {
            **self.admin_site.each_context(request),
            "title": "Catalog audit trail",
            "subtitle": None,
            "opts": self.opts,
            "form": form,
            "entries": entries,
            "page": page,
            "has_next": has_next,
            "query": query.urlencode(),
        }
        return TemplateResponse(request, "admin/catalog/audit_trail.html", context)

    def save_related(self, request, form, formsets, change):
        before = _recurring_amounts(form.instance) if change else {}
        super().save_related(request, form, formsets, change)
        if not isinstance(form, PackageAdminForm):
            return  # a row of the list's sort order, not the package page
        package = form.instance
        changed = [key for key, price in _recurring_amounts(package).items()
                   if key in before and before[key] != price]  # fmt: skip
        if changed:
            # Services may use these amounts: the subscriptions app answers with the
            # page where staff choose what happens to them.
            for _receiver, url in price_amounts_changed.send(
                sender=Package, package=package, changed=changed
            ):
                if url:
                    setattr(request, PRICE_CHANGE_URL, url)
        package_set_scaling_targets(package=package, targets=form.cleaned_data["scaling_targets"])
        warn_after_save(
            request, selectors.package_warnings(package=selectors.package_for_warnings(package.pk))
        )


# --- catalogs ---------------------------------------------------------------


class PackageOrderInline(admin.TabularInline):
    """The catalog's packages in store order; each is edited on its own page."""

    model = Package
    form = PackageOrderForm
    fields = ["service_type", "tier", "status", "sort_order"]
    readonly_fields = ["service_type", "tier", "status"]
    verbose_name_plural = "packages, in store order"
    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Catalog)
class CatalogAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "status", "package_count", "sort_order"]
    list_editable = ["sort_order"]
    list_filter = ["status"]
    search_fields = ["name", "slug"]
    prepopulated_fields = {"slug": ("name",)}
    inlines = [PackageOrderInline]

    def get_queryset(self, request):
        # Counted in the list's one query; "on sale" is Package.objects.listed(), so the
        # count agrees with what the store lists.
        return (
            super()
            .get_queryset(request)
            .annotate(
                package_count=Count("packages"),
                on_sale_count=Count("packages", filter=Q(packages__in=Package.objects.listed())),
            )
        )

    @admin.display(description="packages", ordering="package_count")
    def package_count(self, catalog: Catalog) -> str:
        return (
            f"{catalog.package_count} package{pluralize(catalog.package_count)} "
            f"({catalog.on_sale_count} on sale)"
        )


# --- variants ---------------------------------------------------------------


class VariantOptionInline(admin.TabularInline):
    model = VariantOption
    fields = ["name", "value", "sort_order", "price_names"]
    readonly_fields = ["price_names"]
    show_change_link = True
    extra = 1

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("variant").prefetch_related("prices")

    @admin.display(description="prices (edit on the option's page)")
    def price_names(self, option: VariantOption) -> str:
        return ", ".join(price.name for price in option.prices.all()) or "none yet"


@admin.register(Variant)
class VariantAdmin(admin.ModelAdmin):
    change_form_template = WARNINGS_TEMPLATE
    list_display = ["name", "code", "type", "visibility", "is_scalable", "sort_order"]
    list_editable = ["sort_order"]
    list_filter = ["type", "visibility", "is_scalable"]
    search_fields = ["name", "code"]
    prepopulated_fields = {"code": ("name",)}
    inlines = [VariantOptionInline]

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        if obj is not None and obj.pk:
            context["catalog_warnings"] = selectors.variant_unmatched_pairs(variant=obj)
        return super().render_change_form(request, context, add, change, form_url, obj)

    def save_related(self, request, form, formsets, change):
        super().save_related(request, form, formsets, change)
        warn_after_save(request, selectors.variant_unmatched_pairs(variant=form.instance))


class VariantPriceInline(CurrencyAmountsInline):
    model = VariantPrice
    form = VariantPriceInlineForm
    extra = 1

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .select_related("option__variant")
            .prefetch_related("amounts")
        )


@admin.register(VariantOption)
class VariantOptionAdmin(admin.ModelAdmin):
    change_form_template = WARNINGS_TEMPLATE
    list_display = ["name", "variant", "value", "sort_order"]
    list_select_related = ["variant"]
    list_filter = ["variant"]
    search_fields = ["name", "value", "variant__name", "variant__code"]
    fields = ["variant", "name", "value", "sort_order"]
    inlines = [VariantPriceInline]

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        if obj is not None and obj.pk:
            context["catalog_warnings"] = selectors.variant_unmatched_pairs(variant=obj.variant)
        return super().render_change_form(request, context, add, change, form_url, obj)

    def save_related(self, request, form, formsets, change):
        super().save_related(request, form, formsets, change)
        warn_after_save(request, selectors.variant_unmatched_pairs(variant=form.instance.variant))


# --- features and quotas ----------------------------------------------------


@admin.register(Feature)
class FeatureAdmin(admin.ModelAdmin):
    list_display = ["name", "code", "value_type", "sort_order"]
    list_editable = ["sort_order"]
    list_filter = ["value_type"]
    search_fields = ["name", "code"]
    prepopulated_fields = {"code": ("name",)}


@admin.register(Quota)
class QuotaAdmin(admin.ModelAdmin):
    list_display = ["name", "code", "unit", "reset_period", "sort_order"]
    list_editable = ["sort_order"]
    list_filter = ["reset_period"]
    search_fields = ["name", "code"]
    prepopulated_fields = {"code": ("name",)}
