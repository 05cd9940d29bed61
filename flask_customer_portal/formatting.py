"""Money, dates and numbers as the customer reads them, through Babel."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from functools import lru_cache

from babel.dates import format_date as _format_date
from babel.numbers import format_currency, get_currency_precision

from .i18n import SUPPORTED_LOCALES, supported
from .models import Customer


def locale_of(customer: Customer) -> str:
    """Return the locale ``customer`` reads away from a page (mail): their own choice,
    else their business's default, among the portal's languages; else English."""
    return (
        supported(customer.locale)
        or supported(customer.business.default_locale)
        or SUPPORTED_LOCALES[0]
    )


@lru_cache(maxsize=8192)
def money(amount: int, currency: str, locale: str) -> str:
    """Format minor units for ``locale``: ``123456, "BRL", "pt_BR"`` gives ``R$ 1.234,56``.

    Remembered: a page shows the same few amounts over and over, and Babel's
    formatting is the slowest part of drawing a row.
    """
    units = Decimal(amount).scaleb(-get_currency_precision(currency))
    return str(format_currency(units, currency, locale=locale))


def date(moment: dt.datetime | None, locale: str, style: str = "medium") -> str:
    """Format the (UTC) date of ``moment`` for ``locale``: ``25 de nov. de 2026``."""
    return "" if moment is None else _day(moment.date(), locale, style)


@lru_cache(maxsize=8192)
def _day(day: dt.date, locale: str, style: str) -> str:
    return str(_format_date(day, format=style, locale=locale))
