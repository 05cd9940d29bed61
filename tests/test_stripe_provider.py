"""The Stripe provider against localstripe: card setup, charges, 3-D Secure, look-ups, reactivation.

The app is configured as docs/stripe.md says (the three settings), plus the
address of the session's localstripe server. What a browser does on the card
and 3-D Secure pages (Stripe.js) is done here with the same requests
localstripe's mock of Stripe.js sends; the browser journey drives the pages
themselves. Every test runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
import requests
import sqlalchemy as sa
import stripe
import time_machine
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

import flask_customer_portal as portal
from flask_customer_portal import cards, payments, settlement
from flask_customer_portal import models as m
from flask_customer_portal.errors import ConfigurationError, ValidationError
from flask_customer_portal.providers import ProviderError
from flask_customer_portal.providers.stripe import StripeProvider

from .conftest import EXTERNAL_URL, make_app
from .helpers import PAYMENT_RETURN_URL, outbox_kinds, put_on_hold
from .stripe_server import PUBLISHABLE_KEY, SECRET_KEY, StripeServer

SUCCEEDS = "4242424242424242"
DECLINED_AT_ENTRY = ("4000000000000002", "4000000000009995")
CHARGE_FAILS = "4000000000000341"
AUTHENTICATE = "4000002760003184"


@pytest.fixture
def app(database_url: str, app_factory: Callable[..., Flask], stripe_server: StripeServer) -> Flask:
    return app_factory(
        database_url, CUSTOMER_PORTAL_MAIL_BACKEND="local", **stripe_server.settings()
    )


@pytest.fixture
def provider(app: Flask) -> StripeProvider:
    found = app.extensions["customer_portal"].test_provider
    assert isinstance(found, StripeProvider)
    return found


def enter_card(server: StripeServer, provider: StripeProvider, url: str, number: str) -> str:
    """Do what Stripe.js does on the card page; return where the page sends the customer."""
    setup_id = urlsplit(url).path.rsplit("/", 1)[1]
    page = provider.card_page(setup_id)
    assert page is not None
    confirm = f"{server.url}/v1/setup_intents/{setup_id}/confirm"
    card = {"number": number, "exp_month": "12", "exp_year": "2034", "cvc": "123"}
    body = {"key": PUBLISHABLE_KEY, "use_stripe_sdk": True, "client_secret": page.client_secret}
    answer = requests.post(
        confirm, json={**body, "payment_method_data": {"type": "card", "card": card}}, timeout=10
    )
    if answer.ok and answer.json()["status"] == "requires_action":
        answer = requests.post(confirm, json=body, timeout=10)  # "Complete authentication"
    return page.return_url


def add_card(
    server: StripeServer, provider: StripeProvider, customer: m.Customer, number: str
) -> m.PaymentMethod:
    url = cards.begin_card_setup(customer, return_url=EXTERNAL_URL + "/back")
    back = enter_card(server, provider, url, number)
    return cards.finish_card_setup(customer, dict(parse_qsl(urlsplit(back).query)))


def pay(subscription: m.Subscription, card: m.PaymentMethod, key: str) -> settlement.PaymentOutcome:
    return payments.change_payment_method(
        subscription, card, idempotency_key=key, return_url=PAYMENT_RETURN_URL
    )


def new_key() -> str:
    """An idempotency key of its own (localstripe lives for the whole session)."""
    return "stripe-" + secrets.token_hex(8)


def intent_of(provider: StripeProvider, key: str) -> Any:
    return provider._find_intent(key)


def test_a_card_saved_on_the_stripe_page_is_the_customers_at_stripe(
    session: Session, customer: m.Customer, provider: StripeProvider, stripe_server: StripeServer
) -> None:
    """P1: the portal keeps Stripe's PaymentMethod id, brand, last four and expiry, nothing more.

    The Stripe customer it belongs to is created once and kept in external_id."""
    url = cards.begin_card_setup(customer, return_url=EXTERNAL_URL + "/back")
    assert url.startswith(EXTERNAL_URL + "/portal/stripe/test/setup/seti_")
    session.refresh(customer)
    assert customer.external_id and customer.external_id.startswith("cus_")
    stripe_customer = customer.external_id

    back = enter_card(stripe_server, provider, url, SUCCEEDS)
    assert back.startswith(EXTERNAL_URL + "/back?setup_id=seti_")
    card = cards.finish_card_setup(customer, dict(parse_qsl(urlsplit(back).query)))

    assert card.provider_token.startswith("pm_")
    assert (card.brand, card.last4, card.exp_month, card.exp_year) == ("visa", "4242", 12, 2034)
    assert [c.token for c in provider.list_cards(customer_ref=stripe_customer)] == [
        card.provider_token
    ]
    # A second card page reuses the same Stripe customer; the used page is closed.
    cards.begin_card_setup(customer, return_url=EXTERNAL_URL + "/back")
    session.refresh(customer)
    assert customer.external_id == stripe_customer
    assert provider.card_page(urlsplit(url).path.rsplit("/", 1)[1]) is None

    provider.detach_card(customer_ref=stripe_customer, token=card.provider_token)
    assert provider.list_cards(customer_ref=stripe_customer) == []


def test_another_customers_setup_is_refused(
    business: m.Business,
    customer: m.Customer,
    provider: StripeProvider,
    stripe_server: StripeServer,
) -> None:
    """Z1: a setup id of someone else's card names no card of this customer."""
    url = cards.begin_card_setup(customer, return_url=EXTERNAL_URL + "/back")
    back = enter_card(stripe_server, provider, url, SUCCEEDS)
    other = portal.upsert_customer(business, "bruno@example.com", name="Bruno")
    with pytest.raises(ValidationError) as refused:
        cards.finish_card_setup(other, dict(parse_qsl(urlsplit(back).query)))
    assert refused.value.code == "card_setup_not_found"
    assert cards.list_payment_methods(other) == []


@pytest.mark.parametrize("number", DECLINED_AT_ENTRY)
def test_a_declined_card_is_not_saved(
    customer: m.Customer, provider: StripeProvider, stripe_server: StripeServer, number: str
) -> None:
    """localstripe declines these cards when they are entered: nothing is saved."""
    with pytest.raises(ValidationError):
        add_card(stripe_server, provider, customer, number)
    assert cards.list_payment_methods(customer) == []


def test_reactivation_through_stripe_charges_the_dues_once(
    session: Session,
    customer: m.Customer,
    subscription: m.Subscription,
    provider: StripeProvider,
    stripe_server: StripeServer,
) -> None:
    """P3, P5: bruno's reactivation: on hold with dues, a new card, one PaymentIntent, active."""
    put_on_hold(subscription, renewals=2)
    card = add_card(stripe_server, provider, customer, SUCCEEDS)

    key = new_key()
    outcome = pay(subscription, card, key)

    assert outcome.status == "succeeded"
    intent = intent_of(provider, key)
    assert (intent.amount, intent.currency, intent.status) == (5800, "usd", "succeeded")
    assert intent.customer == customer.external_id and intent.payment_method == card.provider_token
    assert intent.metadata["portal_idempotency_key"] == key
    session.expire_all()
    assert outcome.payment is not None and outcome.payment.provider_reference == intent.id
    assert subscription.status == "active" and subscription.payment_method_id == card.id
    assert portal.outstanding_dues(subscription) == (0, [])
    assert outbox_kinds(session) == ["payment_succeeded", "subscription_reactivated"]
    # The same key again: the recorded outcome, no second PaymentIntent.
    assert pay(subscription, card, key).status == "succeeded"
    intents = provider._client.v1.payment_intents.list(params={"limit": 100}).data
    assert [i.id for i in intents if i.metadata.to_dict().get("portal_idempotency_key") == key] == [
        intent.id
    ]


def test_a_declined_charge_gives_the_customers_reason_and_changes_nothing(
    session: Session,
    customer: m.Customer,
    subscription: m.Subscription,
    provider: StripeProvider,
    stripe_server: StripeServer,
) -> None:
    """P2: a card that saves fine but whose charges fail: the subscription stays on hold."""
    (dues,) = put_on_hold(subscription)
    card = add_card(stripe_server, provider, customer, CHARGE_FAILS)

    key = new_key()
    outcome = pay(subscription, card, key)

    assert (outcome.status, outcome.failure_reason) == ("failed", "Your card was declined.")
    session.expire_all()
    assert subscription.status == "on_hold" and subscription.payment_method_id is None
    assert dues.status == "open" and portal.outstanding_dues(subscription)[0] == 2900
    assert outbox_kinds(session) == []
    # Looked up again later, Stripe tells the same.
    assert provider.lookup(idempotency_key=key).status == "failed"


@pytest.mark.parametrize("bank", ["approves", "abandoned"])
def test_3d_secure_requires_action_then_completes_or_is_cancelled(
    session: Session,
    customer: m.Customer,
    subscription: m.Subscription,
    provider: StripeProvider,
    stripe_server: StripeServer,
    client: FlaskClient,
    bank: str,
) -> None:
    """P4: the charge waits for the bank on the portal's 3-D Secure page, then is settled."""
    put_on_hold(subscription)
    card = add_card(stripe_server, provider, customer, AUTHENTICATE)

    key = new_key()
    outcome = pay(subscription, card, key)

    assert outcome.status == "requires_action" and outcome.action_url is not None
    intent = intent_of(provider, key)
    assert outcome.action_url == f"{EXTERNAL_URL}/portal/stripe/test/authenticate/{intent.id}"
    page = client.get(urlsplit(outcome.action_url).path)
    assert page.status_code == 200 and intent.client_secret in page.text
    policy = page.headers["Content-Security-Policy"]
    assert f"script-src 'self' {stripe_server.url}" in policy
    assert f"connect-src 'self' {stripe_server.url}" in policy
    assert outcome.payment is not None
    if bank == "approves":
        # What localstripe's Stripe.js does when the customer completes the check.
        requests.post(
            f"{stripe_server.url}/v1/payment_intents/{intent.id}/_authenticate?success=true",
            json={"key": PUBLISHABLE_KEY, "client_secret": intent.client_secret},
            timeout=10,
        ).raise_for_status()
        settled = settlement.settle_payment(outcome.payment)
        assert settled.status == "succeeded"
        assert subscription.status == "active"
    else:
        later = datetime.now(UTC) + timedelta(minutes=31)  # past CUSTOMER_PORTAL_ACTION_TIMEOUT
        with time_machine.travel(later):
            settled = settlement.settle_payment(outcome.payment)
        assert settled.status == "failed" and "not charged" in (settled.failure_reason or "")
        assert provider._client.v1.payment_intents.retrieve(intent.id).status == "canceled"
        session.expire_all()
        assert subscription.status == "on_hold"


class CrashingStripe(StripeProvider):
    """A Stripe provider whose process dies right after Stripe took the charge."""

    def charge(self, **kwargs: Any) -> Any:
        super().charge(**kwargs)
        raise ProviderError("the process crashed after charging")


def test_reconcile_finds_a_charge_made_before_a_crash(
    database_url: str, app_factory: Callable[..., Flask], stripe_server: StripeServer
) -> None:
    """P4: the charge was made, our row was not updated; reconcile finds it by key at Stripe."""
    provider = CrashingStripe(
        secret_key=SECRET_KEY, publishable_key=PUBLISHABLE_KEY, api_base=stripe_server.url
    )
    app = app_factory(database_url, portal_options={"test_provider": provider})
    with app.app_context():
        business = portal.create_business("Acme Cloud", public_id="acme")
        customer = portal.upsert_customer(business, "carla@example.com", name="Carla")
        subscription = portal.start_subscription(
            customer, product="Acme Cloud", plan="Pro", price=2900, currency="USD"
        )
        put_on_hold(subscription)
        card = add_card(stripe_server, provider, customer, SUCCEEDS)

        key = new_key()
        outcome = pay(subscription, card, key)

        assert outcome.status == "pending" and subscription.status == "on_hold"
        assert intent_of(provider, key).status == "succeeded"
        assert settlement.reconcile(older_than=timedelta(0)) == 1
        session = app.extensions["customer_portal"].session
        session.expire_all()
        assert subscription.status == "active"
        payment = session.scalar(sa.select(m.Payment).filter_by(idempotency_key=key))
        assert payment is not None and payment.status == "succeeded"


def test_a_lookup_of_a_key_never_charged_finds_nothing(provider: StripeProvider) -> None:
    """P4: no PaymentIntent carries the key: lookup and cancel say so, nothing is created."""
    assert provider.lookup(idempotency_key="never-charged") is None
    assert provider.cancel_charge(idempotency_key="never-charged") is None


def test_stripe_unreachable_is_a_provider_error(customer: m.Customer) -> None:
    """The outcome is unknown when Stripe cannot be reached: ProviderError, never a guess."""
    dead = StripeProvider(
        secret_key=SECRET_KEY, publishable_key=PUBLISHABLE_KEY, api_base="http://127.0.0.1:9"
    )
    with pytest.raises(ProviderError):
        dead.lookup(idempotency_key="any")
    with pytest.raises(ProviderError):
        dead.begin_card_setup(customer_ref="c1", email="a@example.com", return_url="http://x/")


def test_the_card_page_loads_stripe_js_and_nothing_else(
    customer: m.Customer, provider: StripeProvider, stripe_server: StripeServer, client: FlaskClient
) -> None:
    """C3, P1: the page's CSP allows Stripe.js and its API; the form posts nothing to us."""
    url = cards.begin_card_setup(customer, return_url=EXTERNAL_URL + "/back")
    page = client.get(urlsplit(url).path, headers={"Accept-Language": "pt-BR"})
    assert '<html lang="pt-BR"' in page.text
    assert page.status_code == 200
    assert f'src="{stripe_server.js_url}"' in page.text
    assert "Adicionar um cartão" in page.text
    assert f"script-src 'self' {stripe_server.url}" in page.headers["Content-Security-Policy"]
    assert client.get("/portal/stripe/test/setup/seti_unknown").status_code == 404
    assert client.get("/portal/stripe/live/setup/seti_unknown").status_code == 404


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"CUSTOMER_PORTAL_STRIPE_SECRET_KEY": "sk_test_x"}, "PUBLISHABLE_KEY"),
        (
            {
                "CUSTOMER_PORTAL_STRIPE_SECRET_KEY": "sk_live_x",
                "CUSTOMER_PORTAL_STRIPE_PUBLISHABLE_KEY": "pk_test_x",
            },
            "same Stripe mode",
        ),
        ({"CUSTOMER_PORTAL_STRIPE_SECRET_KEY": "pk_test_x"}, "secret key"),
    ],
)
def test_wrong_stripe_keys_are_refused_at_start_up(
    database_url: str, tmp_path: Any, settings: dict[str, str], message: str
) -> None:
    """O3: a key of the wrong kind or mode stops the app from starting."""
    with pytest.raises(ConfigurationError, match=message):
        make_app(database_url, tmp_path / "keys", **settings)


def test_stripe_keys_of_the_other_mode_are_refused(database_url: str, tmp_path: Any) -> None:
    """O3: test keys serving live mode would take no money; live keys in test mode would."""
    test_keys = StripeProvider(secret_key="sk_test_x", publishable_key="pk_test_x")
    with pytest.raises(ConfigurationError, match="live-mode payment provider has Stripe test keys"):
        make_app(database_url, tmp_path / "a", {"provider": test_keys})


def test_production_refuses_stripe_test_keys(database_url: str, tmp_path: Any) -> None:
    """O3: outside debug and testing, sk_test_ keys are named as a problem with their fix."""
    with pytest.raises(ConfigurationError, match="STRIPE_SECRET_KEY is a test key"):
        make_app(
            database_url,
            tmp_path / "prod",
            TESTING=False,
            CUSTOMER_PORTAL_STRIPE_SECRET_KEY="sk_test_x",
            CUSTOMER_PORTAL_STRIPE_PUBLISHABLE_KEY="pk_test_x",
        )


def test_the_sdk_global_settings_are_never_touched(provider: StripeProvider) -> None:
    """Each provider has a client of its own: the SDK's module-level key stays unset."""
    assert stripe.api_key is None


def test_the_pages_let_in_what_stripe_js_needs_on_stripe() -> None:
    """C3: Stripe's published CSP for Stripe.js (scripts and frames of js.stripe.com and its
    subdomains, the 3-D Secure frames of hooks.stripe.com, its API), nothing more."""
    origins = StripeProvider(secret_key="sk_live_x", publishable_key="pk_live_x").origins
    stripe_js = ["https://*.js.stripe.com", "https://js.stripe.com"]
    assert origins["script"] == stripe_js
    assert set(origins["frame"]) == {*stripe_js, "https://hooks.stripe.com"}
    assert set(origins["connect"]) == {*stripe_js, "https://api.stripe.com"}
