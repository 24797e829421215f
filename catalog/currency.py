"""The store's currencies, the customer's choice of one, and how money is written.

Pages, emails and invoice documents all format money here, so an amount reads
the same wherever a customer meets it.
"""

from __future__ import annotations

from decimal import Decimal
from functools import lru_cache

from babel import Locale, UnknownLocaleError
from babel.numbers import format_currency
from django.conf import settings
from django.utils.translation import get_language, to_locale
from djmoney.money import Money

# Amount with the locale's separators, then the ISO code: "1,234.50 USD", "1.234,50 USD".
# The code rather than a symbol, because "$" is ambiguous in a multi-currency store.
MONEY_PATTERN = "#,##0.00\xa0¤¤"
SESSION_KEY = "currency"


def store_currencies() -> list[str]:
    return list(settings.BILLING_CURRENCIES)


def is_store_currency(code: str | None) -> bool:
    return bool(code) and code in settings.BILLING_CURRENCIES


def get_currency(request) -> str:
    """The currency the customer chose (kept in the session), or the store's default one."""
    code = request.session.get(SESSION_KEY)
    return code if is_store_currency(code) else settings.BILLING_DEFAULT_CURRENCY


def set_currency(request, code: str) -> bool:
    """Remember the customer's currency; False when the store does not sell in it."""
    if not is_store_currency(code):
        return False
    request.session[SESSION_KEY] = code
    return True


@lru_cache(maxsize=32)
def _babel_locale(language: str) -> Locale:
    try:
        return Locale.parse(to_locale(language))
    except (UnknownLocaleError, ValueError):
        return Locale.parse(to_locale(settings.LANGUAGE_CODE))


@lru_cache(maxsize=8192)
def _format(amount: Decimal, currency: str, language: str) -> str:
    return format_currency(
        amount, currency, format=MONEY_PATTERN, locale=_babel_locale(language), currency_digits=True
    )


def format_money(money: Money, language: str | None = None) -> str:
    """`money` formatted for the active (or given) language: "9.00 USD", "9,00 USD"."""
    return _format(money.amount, str(money.currency), language or get_language() or "en")


class MoneyFormats:
    """format_money for a batch of thousands of amounts, in the language active when made.

    The language is looked up once (a thread-local read that cost more than the
    formatting), and each distinct amount is formatted once.
    """

    def __init__(self, language: str | None = None) -> None:
        self.language = language or get_language() or "en"
        self._formatted: dict[tuple[Decimal, str], str] = {}

    def __call__(self, money: Money) -> str:
        key = (money.amount, str(money.currency))
        text = self._formatted.get(key)
        if text is None:
            text = self._formatted[key] = _format(*key, self.language)
        return text
