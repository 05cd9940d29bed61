"""The Stripe provider: cards saved with SetupIntents, charges made with PaymentIntents.

Needs the ``stripe`` extra (``pip install "flask-customer-portal[stripe]"``);
the package itself never imports ``stripe``. Each provider talks to Stripe
through a :class:`stripe.StripeClient` of its own, never the SDK's global
settings. See ``docs/stripe.md``.

Card entry happens on a page of the portal's (:mod:`..views.stripe_provider`,
``<URL_PREFIX>/stripe/<mode>/setup/<setup_intent_id>``) that loads Stripe.js:
the card number goes from the customer's browser straight to Stripe. A charge
needing 3-D Secure sends the customer to
``<URL_PREFIX>/stripe/<mode>/authenticate/<payment_intent_id>``, where
Stripe.js runs the bank's check, then back to the charge's ``return_url``.

Every PaymentIntent carries the portal's idempotency key twice: as Stripe's
``Idempotency-Key`` header (a repeated request charges once) and in its
metadata (``portal_idempotency_key``), which :meth:`StripeProvider.lookup`
searches.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

from ..config import stripe_key_mode
from ..db import utcnow
from ..urls import external_url
from .base import ChargeResult, ProviderError, SavedCard
from .stripe_sdk import new_client, sdk
from .test import AUTHENTICATION_FAILED, CANCELLED, FAILURE_REASONS, NOT_AVAILABLE, with_query

#: Where Stripe.js is loaded from by default.
STRIPE_JS_URL = "https://js.stripe.com/v3/"
STRIPE_JS_ORIGIN = "https://js.stripe.com"
#: Stripe's API, when no other base is given.
STRIPE_API_URL = "https://api.stripe.com"
#: The metadata keys the portal writes on Stripe's objects.
CUSTOMER_KEY = "portal_customer_ref"
IDEMPOTENCY_KEY = "portal_idempotency_key"
RETURN_URL_KEY = "portal_return_url"
DESCRIPTION_KEY = "portal_description"
#: How far back :meth:`StripeProvider.lookup` lists PaymentIntents when the
#: Search API does not find a key (its index lags about a minute behind).
LOOKUP_WINDOW = timedelta(hours=1)

#: Stripe's decline codes → what the customer reads (translated where shown).
_DECLINES = {
    "insufficient_funds": FAILURE_REASONS["insufficient_funds"],
    "expired_card": FAILURE_REASONS["expired"],
}
DECLINED = FAILURE_REASONS["declined"]
PAGES = "customer_portal_stripe"
#: How many customers' Stripe ids a provider remembers (the least recently used go first).
KNOWN_CUSTOMERS = 1024


def origin(url: str) -> str:
    """Return the ``scheme://host[:port]`` of ``url``."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


@dataclass(frozen=True)
class StripePage:
    """What the card page or the 3-D Secure page needs from Stripe."""

    client_secret: str
    return_url: str
    email: str = ""
    amount: int = 0
    currency: str = ""
    payment_method: str | None = None
    open: bool = True


class StripeProvider:
    """A :class:`~.base.PaymentProvider` on Stripe.

    :param secret_key: ``sk_test_...`` or ``sk_live_...`` (or a restricted ``rk_`` key).
    :param publishable_key: ``pk_...`` of the same mode, for Stripe.js.
    :param js_url: where the pages load Stripe.js from.
    :param api_base: Stripe's API address (another only for a local fake such as localstripe).
    :raises ValueError: a key is malformed, or the two keys are of different modes.
    :raises ConfigurationError: the ``stripe`` extra is not installed.
    """

    def __init__(
        self,
        *,
        secret_key: str,
        publishable_key: str,
        js_url: str = STRIPE_JS_URL,
        api_base: str | None = None,
    ) -> None:
        stripe = sdk()
        mode = stripe_key_mode(secret_key)
        if mode is None:
            raise ValueError("the Stripe secret key must start with sk_test_ or sk_live_")
        if stripe_key_mode(publishable_key, "pk") != mode:
            raise ValueError(f"the Stripe publishable key must be a pk_{mode}_ key, as the secret")
        self.mode = mode
        self.publishable_key = publishable_key
        self.js_url = js_url
        self.api_base = api_base or STRIPE_API_URL
        self._stripe = stripe
        self._client = new_client(secret_key, api_base=self.api_base)
        self._customers: OrderedDict[str, str] = OrderedDict()

    @property
    def origins(self) -> dict[str, list[str]]:
        """The origins the pages' CSP must allow: ``script``, ``connect`` and ``frame``.

        Stripe's own list (its integration security guide): Stripe.js also loads
        scripts and frames from subdomains of ``js.stripe.com``.
        """
        js = {origin(self.js_url)}
        if js == {STRIPE_JS_ORIGIN}:
            js.add("https://*.js.stripe.com")
        return {
            "script": sorted(js),
            "connect": sorted({*js, origin(self.api_base)}),
            "frame": sorted({*js, "https://hooks.stripe.com"}),
        }

    def _call(self, call: Any, *args: Any, **kwargs: Any) -> Any:
        # Stripe's answer, or ProviderError when it is unknown (network, outage, a wrong key).
        try:
            return call(*args, **kwargs)
        except self._stripe.CardError:
            raise
        except self._stripe.InvalidRequestError:
            raise
        except self._stripe.StripeError as error:
            raise ProviderError(f"Stripe did not answer: {type(error).__name__}") from error

    # -- Customers ---------------------------------------------------------------

    def customer_id(self, *, customer_ref: str, email: str = "") -> str:
        """Return the Stripe customer of ``customer_ref``, creating it if there is none.

        A ref that is a Stripe customer's id is that customer; any other (the
        portal's public id, which looks alike) names the Stripe customer whose
        metadata ``portal_customer_ref`` holds it. The portal stores the id
        returned in the customer's ``external_id`` (the optional method of the
        protocol). The last :data:`KNOWN_CUSTOMERS` answers are remembered.
        """
        if customer_ref in self._customers:
            self._customers.move_to_end(customer_ref)
            return self._customers[customer_ref]
        own = self._retrieve(self._client.v1.customers, customer_ref, "cus_")
        if own is not None and not getattr(own, "deleted", False):
            found: str | None = customer_ref
        else:
            found = self._find_customer(customer_ref, email)
        if found is None:
            created = self._call(
                self._client.v1.customers.create,
                params={"email": email, "metadata": {CUSTOMER_KEY: customer_ref}}
                if email
                else {"metadata": {CUSTOMER_KEY: customer_ref}},
                # Two requests at once create one customer.
                options={"idempotency_key": f"portal-customer-{customer_ref}"},
            )
            found = str(created.id)
        self._customers[customer_ref] = found
        if len(self._customers) > KNOWN_CUSTOMERS:
            self._customers.popitem(last=False)
        return found

    def _find_customer(self, ref: str, email: str) -> str | None:
        # By email: a consistent read on Stripe. Without one, Stripe's Search API
        # (a server without it, such as localstripe, is listed through instead).
        if email:
            candidates = self._list(self._client.v1.customers, {"email": email})
        else:
            candidates = self._search(
                self._client.v1.customers, f"metadata['{CUSTOMER_KEY}']:'{ref}'"
            )
        return next((str(c.id) for c in candidates if _meta(c, CUSTOMER_KEY) == ref), None)

    def _list(self, service: Any, params: dict[str, Any]) -> Iterator[Any]:
        page = self._call(service.list, params={"limit": 100, **params})
        yield from page.auto_paging_iter()

    def _search(self, service: Any, query: str) -> Iterator[Any]:
        try:
            page = self._call(service.search, params={"query": query, "limit": 100})
        except self._stripe.InvalidRequestError as error:
            if error.http_status != 404:
                raise ProviderError("Stripe refused the search") from error
            yield from self._list(service, {})  # no Search API here: list them all
            return
        yield from page.auto_paging_iter()

    # -- Card setup --------------------------------------------------------------

    def begin_card_setup(self, *, customer_ref: str, email: str, return_url: str) -> str:
        """Open a SetupIntent (off-session use) and return the URL of the portal's card page."""
        customer = self.customer_id(customer_ref=customer_ref, email=email)
        intent = self._call(
            self._client.v1.setup_intents.create,
            params={
                "customer": customer,
                "usage": "off_session",
                "payment_method_types": ["card"],
                "metadata": {RETURN_URL_KEY: return_url, CUSTOMER_KEY: customer_ref},
            },
        )
        return external_url(PAGES + ".setup", mode=self.mode, setup_intent_id=intent.id)

    def card_page(self, setup_intent_id: str) -> StripePage | None:
        """Return what the card page needs, or ``None``: no such setup, or its card is saved."""
        intent = self._retrieve(self._client.v1.setup_intents, setup_intent_id, "seti_")
        if intent is None or intent.status in ("succeeded", "canceled"):
            return None
        customer = self._call(self._client.v1.customers.retrieve, intent.customer)
        return StripePage(
            client_secret=intent.client_secret,
            return_url=with_query(_meta(intent, RETURN_URL_KEY), setup_id=intent.id),
            email=customer.email or "",
        )

    def _retrieve(self, service: Any, object_id: str, prefix: str, **params: Any) -> Any:
        if not object_id.startswith(prefix):
            return None
        try:
            return self._call(service.retrieve, object_id, params=params)
        except self._stripe.InvalidRequestError:
            return None

    def complete_card_setup(self, *, customer_ref: str, params: Mapping[str, str]) -> SavedCard:
        """Return the card saved by the SetupIntent ``params["setup_id"]`` of this customer.

        :raises ValueError: no such SetupIntent of this customer, or it has not succeeded.
        """
        intent = self._retrieve(
            self._client.v1.setup_intents,
            params.get("setup_id") or "",
            "seti_",
            expand=["payment_method"],
        )
        customer = self.customer_id(customer_ref=customer_ref)
        if intent is None or intent.customer != customer or intent.status != "succeeded":
            raise ValueError("no finished card setup of this customer")
        method = intent.payment_method
        if method.customer is None:
            # Stripe attaches it on success; localstripe leaves that to us.
            method = self._call(
                self._client.v1.payment_methods.attach, method.id, params={"customer": customer}
            )
        elif method.customer != customer:
            raise ValueError("the card belongs to another customer")
        return _saved_card(method)

    def list_cards(self, *, customer_ref: str) -> list[SavedCard]:
        """Return the customer's cards at Stripe."""
        customer = self.customer_id(customer_ref=customer_ref)
        methods = self._list(
            self._client.v1.payment_methods, {"customer": customer, "type": "card"}
        )
        return [_saved_card(method) for method in methods]

    def detach_card(self, *, customer_ref: str, token: str) -> None:
        """Detach one of the customer's cards (nothing happens for another's)."""
        method = self._retrieve(self._client.v1.payment_methods, token, "pm_")
        if method is not None and method.customer == self.customer_id(customer_ref=customer_ref):
            self._call(self._client.v1.payment_methods.detach, token)

    # -- Charges -----------------------------------------------------------------

    def charge(
        self,
        *,
        customer_ref: str,
        token: str,
        amount: int,
        currency: str,
        idempotency_key: str,
        description: str,
        return_url: str,
    ) -> ChargeResult:
        """Charge a saved card with an off-session PaymentIntent, once per ``idempotency_key``.

        :raises ProviderError: Stripe could not be reached; :meth:`lookup` tells later.
        """
        customer = self.customer_id(customer_ref=customer_ref)
        method = self._retrieve(self._client.v1.payment_methods, token, "pm_")
        if method is None or method.customer != customer:
            return ChargeResult("failed", failure_reason=NOT_AVAILABLE)
        params = {
            "amount": amount,
            "currency": currency.lower(),
            "customer": customer,
            "payment_method": token,
            "confirm": True,
            "off_session": True,
            "metadata": {
                IDEMPOTENCY_KEY: idempotency_key,
                RETURN_URL_KEY: return_url,
                DESCRIPTION_KEY: description[:500],
            },
        }
        try:
            intent = self._call(
                self._client.v1.payment_intents.create,
                params=params,
                options={"idempotency_key": idempotency_key},
            )
        except self._stripe.CardError as error:
            found = (error.error and error.error.payment_intent) or None
            if error.code == "authentication_required" and found:
                # Stripe wants the customer present: the 3-D Secure page confirms it on-session.
                return self._result(
                    found["id"], "requires_action", _get(found, "last_payment_error")
                )
            return ChargeResult("failed", found["id"] if found else None, _reason(error.error))
        except self._stripe.InvalidRequestError as error:
            raise ProviderError("Stripe refused the charge") from error
        return self._result(intent.id, intent.status, intent.last_payment_error)

    def _result(self, intent_id: str, status: str, error: Any) -> ChargeResult:
        if status == "succeeded":
            return ChargeResult("succeeded", intent_id)
        if status == "requires_action" or (
            status == "requires_payment_method" and _get(error, "code") == "authentication_required"
        ):
            page = external_url(
                PAGES + ".authenticate", mode=self.mode, payment_intent_id=intent_id
            )
            return ChargeResult("requires_action", intent_id, action_url=page)
        if status == "canceled":
            return ChargeResult("failed", intent_id, CANCELLED)
        if status == "requires_payment_method":
            return ChargeResult("failed", intent_id, _reason(error))
        # processing, requires_confirmation, requires_capture: not decided yet.
        raise ProviderError(f"the PaymentIntent is {status}")

    def _find_intent(self, idempotency_key: str) -> Any:
        query = f"metadata['{IDEMPOTENCY_KEY}']:'{idempotency_key}'"
        service = self._client.v1.payment_intents
        for intent in self._search(service, query):
            if _meta(intent, IDEMPOTENCY_KEY) == idempotency_key:
                return intent
        # Search lags behind: the last hour, listed (newest first on Stripe).
        since = int((utcnow() - LOOKUP_WINDOW).timestamp())
        for intent in self._list(service, {}):
            if _meta(intent, IDEMPOTENCY_KEY) == idempotency_key:
                return intent
            if intent.created < since:
                break
        return None

    def lookup(self, *, idempotency_key: str) -> ChargeResult | None:
        """Return the outcome of the PaymentIntent made with this key, or ``None``."""
        intent = self._find_intent(idempotency_key)
        if intent is None:
            return None
        return self._result(intent.id, intent.status, intent.last_payment_error)

    def cancel_charge(self, *, idempotency_key: str) -> ChargeResult | None:
        """Cancel the PaymentIntent made with this key if it still waits for the customer."""
        intent = self._find_intent(idempotency_key)
        if intent is None:
            return None
        result = self._result(intent.id, intent.status, intent.last_payment_error)
        if result.status != "requires_action":
            return result
        try:
            intent = self._call(self._client.v1.payment_intents.cancel, intent.id)
        except self._stripe.InvalidRequestError:
            # Decided meanwhile: it keeps its outcome.
            intent = self._call(self._client.v1.payment_intents.retrieve, intent.id)
        return self._result(intent.id, intent.status, intent.last_payment_error)

    def authentication_page(self, payment_intent_id: str) -> StripePage | None:
        """Return what the 3-D Secure page needs, or ``None`` for no such charge of the portal's."""
        intent = self._retrieve(self._client.v1.payment_intents, payment_intent_id, "pi_")
        if intent is None or not _meta(intent, IDEMPOTENCY_KEY):
            return None
        waiting = self._result(intent.id, intent.status, intent.last_payment_error)
        return StripePage(
            client_secret=intent.client_secret,
            return_url=_meta(intent, RETURN_URL_KEY),
            amount=intent.amount,
            currency=intent.currency.upper(),
            payment_method=intent.payment_method
            if intent.status == "requires_payment_method"
            else None,
            open=waiting.status == "requires_action",
        )


def _get(value: Any, name: str) -> Any:
    # A field of a Stripe object, or of a plain dict (in an error's body); None if absent.
    if value is None:
        return None
    try:
        return value[name]
    except (KeyError, TypeError):
        return None


def _meta(stripe_object: Any, name: str) -> str:
    return str(_get(_get(stripe_object, "metadata"), name) or "")


def _reason(error: Any) -> str:
    # What the customer reads, from Stripe's error (translated where it is shown).
    if _get(error, "code") == "payment_intent_authentication_failure":
        return AUTHENTICATION_FAILED
    code = _get(error, "decline_code") or _get(error, "code")
    return _DECLINES.get(str(code), DECLINED)


def _saved_card(method: Any) -> SavedCard:
    card = method.card
    return SavedCard(
        token=method.id,
        brand=str(card.brand),
        last4=str(card.last4),
        exp_month=int(card.exp_month),
        exp_year=int(card.exp_year),
    )
