"""Money, dates and numbers as the customer reads them, through Babel."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

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


def money(amount: int, currency: str, locale: str) -> str:
    """Format minor units for ``locale``: ``123456, "BRL", "pt_BR"`` gives ``R$ 1.234,56``."""
    units = Decimal(amount).scaleb(-get_currency_precision(currency))
    return str(format_currency(units, currency, locale=locale))


def date(moment: datetime | None, locale: str, style: str = "medium") -> str:
    """Format the (UTC) date of ``moment`` for ``locale``: ``25 de nov. de 2026``."""
    return "" if moment is None else str(_format_date(moment.date(), format=style, locale=locale))
