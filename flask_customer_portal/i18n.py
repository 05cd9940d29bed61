"""The portal's translations: its own gettext domain, its languages, and Flask-Babel's set-up.

The portal's messages live in their own domain (``customer_portal``) in the
package's ``translations/`` folder, so they never mix with a host's catalogues.
Templates get ``_``, ``gettext`` and ``ngettext`` bound to that domain from the
portal's context processor (host templates keep their own); Python code uses
:func:`gettext` and friends from here.

Flask-Babel is app-wide: when the host registered it first, the portal reuses
it and chooses the locale only on its own pages; otherwise the portal registers
it, and pages outside the portal get ``BABEL_DEFAULT_LOCALE``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any
from weakref import WeakKeyDictionary

from babel import Locale, UnknownLocaleError
from flask import Flask
from flask_babel import Babel, Domain, get_locale
from flask_babel.speaklater import LazyString
from jinja2 import pass_context
from jinja2.runtime import Context
from markupsafe import Markup

#: The languages the portal is translated into; English is the source.
SUPPORTED_LOCALES = ("en", "pt_BR", "es")
#: Each language as its speakers name it, for the language switcher.
LANGUAGES = (("en", "English"), ("pt_BR", "Português (Brasil)"), ("es", "Español"))

DOMAIN = Domain(
    translation_directories=str(Path(__file__).parent / "translations"), domain="customer_portal"
)


def gettext(string: str, **variables: Any) -> str:
    """Translate ``string`` into the current locale, then fill in ``%(name)s`` variables."""
    return str(DOMAIN.gettext(string, **variables))


def ngettext(singular: str, plural: str, num: int, **variables: Any) -> str:
    """Translate the form of ``singular``/``plural`` for ``num``; ``%(num)d`` is the count."""
    return str(DOMAIN.ngettext(singular, plural, num, **variables))


def bound_gettext() -> Callable[..., str]:
    """Return :func:`gettext` bound to the current locale's catalogue, for many calls in a row.

    Each call is then a dictionary look-up; the locale is the one current now.
    """
    translations = DOMAIN.get_translations()

    def gettext_(string: str, **variables: Any) -> str:
        found = str(translations.ugettext(string))
        return found % variables if variables else found

    return gettext_


def lazy_gettext(string: str, **variables: Any) -> Any:
    """Like :func:`gettext`, translated only when turned into text (a mail's subject)."""
    return LazyString(gettext, string, **variables)


_l = lazy_gettext


def N_(string: str) -> str:
    """Mark ``string`` for extraction only; it is translated where it is shown."""
    return string


def translated(text: str | None) -> str:
    """Translate a message the portal stored or raised in English, such as a test card's
    failure reason; any other text (a merchant's, a provider's) comes back as it is."""
    return str(DOMAIN.gettext(text)) if text else ""


def period(interval: str, count: int) -> str:
    """Name a billing period in the current locale: ``month``, ``3 months``."""
    if interval == "day":
        return ngettext("day", "%(num)d days", count)
    if interval == "week":
        return ngettext("week", "%(num)d weeks", count)
    if interval == "year":
        return ngettext("year", "%(num)d years", count)
    return ngettext("month", "%(num)d months", count)


def lazy_period(interval: str, count: int) -> Any:
    """Like :func:`period`, named only when turned into text (in a mail's locale)."""
    return LazyString(period, interval, count)


def supported(tag: str | None) -> str | None:
    """Return the supported locale for a locale or language tag, or ``None``.

    ``pt-BR`` and ``pt`` give ``pt_BR``; ``es_MX`` gives ``es``; ``de`` gives ``None``.
    """
    if not isinstance(tag, str) or not tag:
        return None
    try:
        locale = Locale.parse(tag.replace("-", "_"))
    except (ValueError, TypeError, UnknownLocaleError):
        return None
    if str(locale) in SUPPORTED_LOCALES:
        return str(locale)
    return next((code for code in SUPPORTED_LOCALES if code.split("_")[0] == locale.language), None)


def current_locale() -> str:
    """Return the locale the current page or mail is rendered in."""
    return str(get_locale() or SUPPORTED_LOCALES[0])


def _fill(context: Context, rv: str, variables: dict[str, Any]) -> str:
    # As Jinja's own newstyle gettext: in autoescaped (HTML) templates the message is
    # the portal's own markup, from its catalogue, and Markup's % escapes every value
    # (V2). With old-style gettext the template fills the values in itself.
    if context.eval_ctx.autoescape:
        rv = Markup(rv)  # nosec B704
    newstyle = getattr(context.environment, "newstyle_gettext", False)
    return rv % variables if newstyle or variables else rv


#: Each status of a subscription, invoice, payment or license key, as the customer reads it.
STATUS_LABELS = {
    "active": N_("Active"),
    "on_hold": N_("On hold"),
    "pending": N_("Pending"),
    "cancelled": N_("Cancelled"),
    "expired": N_("Expired"),
    "failed": N_("Failed"),
    "paid": N_("Paid"),
    "open": N_("Open"),
    "void": N_("Void"),
    "draft": N_("Draft"),
    "uncollectible": N_("Uncollectible"),
    "succeeded": N_("Succeeded"),
    "requires_action": N_("Action needed"),
    "inactive": N_("Inactive"),
    "revoked": N_("Revoked"),
}


#: What templates have shown of each catalogue, kept across pages: a message's
#: translation (key: the message alone), and the text shown for it without
#: variables (key: the message, and whether the template is HTML and fills
#: newstyle). A catalogue Flask-Babel lets go of takes its entries with it.
_SHOWN: WeakKeyDictionary[Any, dict[tuple[Any, ...], str]] = WeakKeyDictionary()


def template_helpers() -> dict[str, Any]:
    """Return the portal's translation functions for a template's context, in the current locale.

    They are bound to the locale's catalogue once per rendering: a page calls
    them dozens of times (labels on every row), and each call is then a
    dictionary look-up instead of a trip through Flask-Babel's context. What
    they look up is remembered for the next pages in the same language.
    """
    translations = DOMAIN.get_translations()
    shown = _SHOWN.get(translations)
    if shown is None:
        shown = _SHOWN.setdefault(translations, {})

    def lookup(string: str) -> str:
        found = shown.get((string,))
        if found is None:
            found = shown[string,] = translations.ugettext(string)
        return found

    @pass_context
    def gettext_(context: Context, string: str, **variables: Any) -> str:
        if variables:
            return _fill(context, lookup(string), variables)
        newstyle = getattr(context.environment, "newstyle_gettext", False)
        key = (string, context.eval_ctx.autoescape, newstyle)
        found = shown.get(key)
        if found is None:
            found = shown[key] = _fill(context, lookup(string), variables)
        return found

    @pass_context
    def ngettext_(context: Context, singular: str, plural: str, num: int, **variables: Any) -> str:
        variables.setdefault("num", num)
        # The domain's own ngettext would fill in ``num`` alone, before the other variables.
        return _fill(context, translations.ungettext(singular, plural, num), variables)

    def status_label(status: str) -> str:
        label = STATUS_LABELS.get(status)
        return lookup(label) if label else status

    return {
        "_": gettext_,
        "gettext": gettext_,
        "ngettext": ngettext_,
        "status_label": status_label,
        "translated": translated,
        "period": period,
        "languages": LANGUAGES,
    }


def init_babel(app: Flask, locale_selector: Callable[[], str | None]) -> None:
    """Register Flask-Babel on ``app``, or reuse the host's, with the portal's locale choice.

    ``locale_selector`` returns the locale on the portal's pages and ``None``
    elsewhere; there the host's own selector (if any) decides, else
    ``BABEL_DEFAULT_LOCALE``.
    """
    if "babel" not in app.extensions:
        Babel(app, locale_selector=locale_selector)
    else:
        babel = app.extensions["babel"]
        host_selector = babel.locale_selector

        def select() -> str | None:
            chosen = locale_selector()
            if chosen is None and host_selector is not None:
                hosts: str | None = host_selector()
                return hosts
            return chosen

        babel.locale_selector = select
    # The portal's templates use {% trans %}: make sure Jinja understands it.
    if "jinja2.ext.InternationalizationExtension" not in app.jinja_env.extensions:
        app.jinja_env.add_extension("jinja2.ext.i18n")
        app.jinja_env.newstyle_gettext = True  # type: ignore[attr-defined]
