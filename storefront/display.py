"""Words and figures customers read, shared by the templates and the package page's script data."""

from __future__ import annotations

from catalog.availability import Offer, VariantChoice
from catalog.currency import format_money
from catalog.models import Feature, Package, PackageFeature, PackagePrice, PackageQuota, Quota
from catalog.text import plural
from provisioning.service_types import ServiceType


def price_text(offer: Offer) -> str:
    """“12.00 USD / month”, “Free”, or what to say when it is not sold in this currency."""
    if offer.option.is_free:
        return "Free"
    if offer.amount is None:
        return f"Not sold in {offer.currency}"
    return f"{format_money(offer.price)} {offer.option.period_suffix()}"


def fees_text(offer: Offer) -> str:
    fees = []
    if offer.setup_fee:
        fees.append(f"setup fee {format_money(offer.setup_fee)}")
    if offer.signup_fee:
        fees.append(f"signup fee {format_money(offer.signup_fee)}")
    return ("Plus " + " and ".join(fees) + ".") if fees else ""


def starting_price_text(offer: Offer | None, currency: str) -> str:
    if offer is None:
        return f"Not sold in {currency}"
    if offer.option.is_free:
        return "Free"
    return f"from {price_text(offer)}"


def variant_choice_text(choice: VariantChoice, option: PackagePrice) -> str:
    """What an option adds to the chosen pricing option: “+15.00 USD / month”, “included”."""
    parts = []
    if choice.price.amount > 0:
        parts.append(f"+{format_money(choice.price)} {option.period_suffix()}".strip())
    else:
        parts.append("included")
    if choice.setup_fee:
        parts.append(f"setup fee {format_money(choice.setup_fee)}")
    return ", ".join(parts)


def trial_text(package: Package) -> str:
    if not package.has_trial:
        return ""
    length = plural(package.trial_period, package.trial_interval)
    if package.trial_mode == Package.TrialMode.INSIDE:
        return f"Trial: the first {length} of your first paid period."
    return f"Free trial: {length} before your first paid period."


def service_type_text(package: Package) -> str:
    """The kind of service, unless it is the catch-all staff pick for anything else."""
    if package.service_type == ServiceType.EXTENSIBLE:
        return ""
    return package.get_service_type_display()


def trial_badge(package: Package) -> str:
    if not package.has_trial:
        return ""
    return f"{package.trial_period}-{package.trial_interval} trial"


def stock_badge_text(stock_qty: int, *, sold_out: bool) -> str:
    if sold_out:
        return "Sold out"
    if stock_qty > 0:  # -1 is "not tracked": no badge
        return f"{stock_qty} left"
    return ""


def feature_value(value: PackageFeature) -> str:
    if value.feature.value_type == Feature.ValueType.BOOLEAN:
        return "Included" if value.is_enabled else "Not included"
    return value.value


def quota_reset_text(quota: Quota) -> str:
    return "" if quota.reset_period == Quota.Reset.NEVER else f"per {quota.reset_period}"


def quota_text(value: PackageQuota) -> str:
    """“100 GB”, “unlimited”, “40 hours per month”."""
    label = value.limit_label
    reset = quota_reset_text(value.quota)
    return f"{label} {reset}" if reset and value.limit is not None else label


def overage_text(value: PackageQuota, package: Package) -> str:
    if package.overages_enabled and value.limit is not None and value.overage_price is not None:
        return f"then {format_money(value.overage_price)} per {value.quota.unit}"
    return ""
