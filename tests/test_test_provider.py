"""The test provider: its card page, its challenge page, and its charges."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from urllib.parse import parse_qs, urlsplit

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from flask_customer_portal.errors import ConfigurationError
from flask_customer_portal.models import Customer
from flask_customer_portal.providers import (
    ChargeResult,
    PaymentProvider,
    ProviderError,
    SavedCard,
    TestProvider,
)
from flask_customer_portal.proxies import provider_for

from .conftest import EXTERNAL_URL, csrf_token, provider_of
from .helpers import enter_card, stored_rows

RETURN_URL = f"{EXTERNAL_URL}/portal/subscriptions/sub_1/payment-method/card-added"
CHALLENGE_RETURN = f"{EXTERNAL_URL}/portal/payments/pay_1/return"
NUMBER_INPUT = re.compile(r'<input [^>]*name="number"[^>]*value="([^"]*)"')


def finish_setup(app: Flask, client: FlaskClient, number: str, customer_ref: str) -> str:
    """Save a card on the card page; return the setup id the portal gets back."""
    url = provider_of(app).begin_card_setup(
        customer_ref=customer_ref, email="ana@example.com", return_url=RETURN_URL
    )
    response = enter_card(client, url, number)
    assert response.status_code == 303, response.text
    return parse_qs(urlsplit(response.location).query)["setup_id"][0]


def add_card(
    app: Flask, client: FlaskClient, number: str, customer_ref: str = "cus_ana"
) -> SavedCard:
    """Save a card through the card page, as the portal would, and return it."""
    setup_id = finish_setup(app, client, number, customer_ref)
    return provider_of(app).complete_card_setup(
        customer_ref=customer_ref, params={"setup_id": setup_id}
    )


def charge(
    provider: TestProvider, card: SavedCard, key: str = "pay_1", customer_ref: str = "cus_ana"
) -> ChargeResult:
    return provider.charge(
        customer_ref=customer_ref,
        token=card.token,
        amount=5800,
        currency="USD",
        idempotency_key=key,
        description="Acme Cloud Pro",
        return_url=CHALLENGE_RETURN,
    )


def test_default_provider_of_test_mode(app: Flask) -> None:
    """Each app gets its own TestProvider in test mode; live mode gets the merchant's provider."""
    provider = provider_of(app)
    assert isinstance(provider, PaymentProvider)
    assert provider_for("test") is provider
    with pytest.raises(ConfigurationError, match="no payment provider for live mode"):
        provider_for("live")


def test_a_given_test_provider_is_used(
    database_url: str, app_factory: Callable[..., Flask]
) -> None:
    """The merchant may pass their own test-mode provider; the live provider stays separate."""
    given = TestProvider(fail_after_charge="timeout")
    live = TestProvider()
    app = app_factory(database_url, portal_options={"test_provider": given, "provider": live})
    with app.app_context():
        assert provider_for("test") is given
        assert provider_for("live") is live


def test_card_page_is_a_marked_test_page(app: Flask, client: FlaskClient) -> None:
    """The card page says it is a test page, lists the test cards, and carries the headers (C3)."""
    url = provider_of(app).begin_card_setup(
        customer_ref="cus_ana", email="ana@example.com", return_url=RETURN_URL
    )
    assert url.startswith(f"{EXTERNAL_URL}/portal/test-provider/setup/")
    page = client.get(url)
    assert page.status_code == 200
    assert "Test payment page — no real card, no real money" in page.text
    assert '<meta name="robots" content="noindex">' in page.text
    assert "ana@example.com" in page.text
    for number in (
        "4242 4242 4242 4242",
        "4000 0000 0000 0002",
        "4000 0000 0000 9995",
        "4000 0000 0000 0069",
        "4000 0027 6000 3184",
        "4000 0000 0000 0341",
    ):
        assert number in page.text
    assert "frame-ancestors 'none'" in page.headers["Content-Security-Policy"]
    assert page.headers["Cache-Control"] == "no-store"


def test_unknown_card_page_is_not_found(client: FlaskClient) -> None:
    assert client.get("/portal/test-provider/setup/seti_nope").status_code == 404
    assert client.get("/portal/test-provider/challenge/ch_nope").status_code == 404


def test_saved_card_returns_to_the_portal(app: Flask, client: FlaskClient) -> None:
    """A test card is saved; the customer goes back to the return_url with the setup id."""
    provider = provider_of(app)
    url = provider.begin_card_setup(
        customer_ref="cus_ana", email="ana@example.com", return_url=RETURN_URL + "?card=new"
    )
    response = enter_card(client, url, "4242 4242 4242 4242", expiry="07 / 31", cvc="4321")
    assert response.status_code == 303
    target = urlsplit(response.location)
    assert response.location.startswith(RETURN_URL + "?")
    setup_id = parse_qs(target.query)["setup_id"][0]
    assert parse_qs(target.query)["card"] == ["new"]
    card = provider.complete_card_setup(customer_ref="cus_ana", params={"setup_id": setup_id})
    assert (card.brand, card.last4, card.exp_month, card.exp_year) == ("visa", "4242", 7, 2031)
    assert provider.list_cards(customer_ref="cus_ana") == [card]
    # Completing again (a reload of the portal's page) gives the same card.
    assert provider.complete_card_setup(customer_ref="cus_ana", params={"setup_id": setup_id}) == (
        card
    )
    # The card page is used up.
    assert client.get(url).status_code == 404


def test_setup_belongs_to_its_customer(app: Flask, client: FlaskClient) -> None:
    """Another customer cannot take the card, nor charge it."""
    provider = provider_of(app)
    setup_id = finish_setup(app, client, "4242424242424242", "cus_ana")
    card = provider.complete_card_setup(customer_ref="cus_ana", params={"setup_id": setup_id})
    with pytest.raises(ValueError):
        provider.complete_card_setup(customer_ref="cus_bruno", params={"setup_id": setup_id})
    with pytest.raises(ValueError):
        provider.complete_card_setup(customer_ref="cus_ana", params={"setup_id": "seti_nope"})
    with pytest.raises(ValueError):
        provider.complete_card_setup(customer_ref="cus_ana", params={})
    assert provider.list_cards(customer_ref="cus_bruno") == []
    result = charge(provider, card, customer_ref="cus_bruno")
    assert result.status == "failed"
    provider.detach_card(customer_ref="cus_bruno", token=card.token)
    assert provider.list_cards(customer_ref="cus_ana") == [card]
    provider.detach_card(customer_ref="cus_ana", token=card.token)
    assert provider.list_cards(customer_ref="cus_ana") == []


def test_unfinished_setup_gives_no_card(app: Flask) -> None:
    provider = provider_of(app)
    url = provider.begin_card_setup(
        customer_ref="cus_ana", email="ana@example.com", return_url=RETURN_URL
    )
    with pytest.raises(ValueError):
        provider.complete_card_setup(
            customer_ref="cus_ana", params={"setup_id": url.rsplit("/")[-1]}
        )


@pytest.mark.parametrize(
    ("number", "field", "message", "expiry", "cvc"),
    [
        (
            "4111 1111 1111 1111",
            "number",
            "Use one of the test cards listed on this page.",
            "12/34",
            "1",
        ),
        ("", "number", "Enter a card number.", "12/34", "123"),
        ("4242 4242 4242 4242", "expiry", "This card has expired", "01/20", "123"),
        ("4242 4242 4242 4242", "expiry", "Enter the expiry date as MM/YY", "13/40", "123"),
        ("4242 4242 4242 4242", "cvc", "Enter the 3 or 4 digits", "12/34", "12a"),
    ],
)
def test_bad_entry_is_refused(
    app: Flask,
    client: FlaskClient,
    number: str,
    field: str,
    message: str,
    expiry: str,
    cvc: str,
) -> None:
    """An unknown number, a past expiry or a bad CVC: a clear message, nothing saved (P1)."""
    provider = provider_of(app)
    url = provider.begin_card_setup(
        customer_ref="cus_ana", email="ana@example.com", return_url=RETURN_URL
    )
    response = enter_card(client, url, number, expiry=expiry, cvc=cvc)
    assert response.status_code == 400
    assert message in response.text
    assert f'id="cp-{field}-error"' in response.text
    assert "The card was not saved." in response.text
    # The number is never sent back in the form: the customer types it again.
    assert NUMBER_INPUT.search(response.text)[1] == ""  # type: ignore[index]
    assert "4111" not in response.text
    assert provider.list_cards(customer_ref="cus_ana") == []
    # The customer corrects it and carries on.
    assert enter_card(client, url, "4242424242424242").status_code == 303


def test_card_page_needs_the_csrf_token(app: Flask, client: FlaskClient) -> None:
    """C1: the card form is refused without its token."""
    provider = provider_of(app)
    url = provider.begin_card_setup(
        customer_ref="cus_ana", email="ana@example.com", return_url=RETURN_URL
    )
    response = client.post(url, data={"number": "4242424242424242", "expiry": "12/34", "cvc": "1"})
    assert response.status_code == 400
    assert provider.list_cards(customer_ref="cus_ana") == []


@pytest.mark.parametrize(
    ("number", "status", "reason"),
    [
        ("4242 4242 4242 4242", "succeeded", None),
        ("4000 0000 0000 0002", "failed", "Your card was declined."),
        ("4000 0000 0000 9995", "failed", "Your card has insufficient funds."),
        ("4000 0000 0000 0069", "failed", "Your card has expired."),
        ("4000 0027 6000 3184", "requires_action", None),
        ("4000 0000 0000 0341", "failed", "Your card was declined."),
    ],
)
def test_each_test_card_decides_the_charge(
    app: Flask, client: FlaskClient, number: str, status: str, reason: str | None
) -> None:
    """Every test card saves, and its charges end as the test provider's table says."""
    provider = provider_of(app)
    card = add_card(app, client, number)
    assert card.last4 == number[-4:]
    result = charge(provider, card)
    assert (result.status, result.failure_reason) == (status, reason)
    assert result.reference == provider.charges["pay_1"].charge_id
    if status == "requires_action":
        assert result.action_url == (
            f"{EXTERNAL_URL}/portal/test-provider/challenge/{result.reference}"
        )
    else:
        assert result.action_url is None
    assert provider.lookup(idempotency_key="pay_1") == result


def test_same_key_charges_once(app: Flask, client: FlaskClient) -> None:
    """P3: the same idempotency key twice makes one charge and answers the same."""
    provider = provider_of(app)
    card = add_card(app, client, "4242424242424242")
    first = charge(provider, card, key="pay_1")
    assert charge(provider, card, key="pay_1") == first
    assert provider.charge_count == 1
    assert charge(provider, card, key="pay_2").reference != first.reference
    assert provider.charge_count == 2
    assert set(provider.charges) == {"pay_1", "pay_2"}
    assert provider.charges["pay_1"].amount == 5800


def test_lookup_before_and_after_the_charge(app: Flask, client: FlaskClient) -> None:
    provider = provider_of(app)
    card = add_card(app, client, "4000000000000002")
    assert provider.lookup(idempotency_key="pay_1") is None
    result = charge(provider, card)
    assert provider.lookup(idempotency_key="pay_1") == result
    assert provider.lookup(idempotency_key="pay_2") is None


def test_charge_refuses_bad_amounts(app: Flask, client: FlaskClient) -> None:
    """P5: integer minor units and an ISO currency; nothing is charged otherwise."""
    provider = provider_of(app)
    card = add_card(app, client, "4242424242424242")
    for amount, currency in ((0, "USD"), (10.5, "USD"), (100, "usd"), (100, "US")):
        with pytest.raises(ValueError):
            provider.charge(
                customer_ref="cus_ana",
                token=card.token,
                amount=amount,  # type: ignore[arg-type]
                currency=currency,
                idempotency_key="pay_1",
                description="",
                return_url=CHALLENGE_RETURN,
            )
    assert provider.charge_count == 0


@pytest.mark.parametrize(
    ("decision", "status", "reason"),
    [("approve", "succeeded", None), ("fail", "failed", "The bank declined the authentication.")],
)
def test_challenge_page_decides_and_returns(
    app: Flask, client: FlaskClient, decision: str, status: str, reason: str | None
) -> None:
    """The 3-D Secure page: Approve or Fail decides the charge, then back to the return_url."""
    provider = provider_of(app)
    card = add_card(app, client, "4000 0027 6000 3184")
    result = charge(provider, card)
    assert result.status == "requires_action" and result.action_url
    page = client.get(result.action_url)
    assert page.status_code == 200
    assert "Test payment page — no real card, no real money" in page.text
    assert "$58.00" in page.text
    assert client.post(result.action_url, data={"decision": decision}).status_code == 400
    response = client.post(
        result.action_url, data={"csrf_token": csrf_token(page.text), "decision": decision}
    )
    assert response.status_code == 303
    assert response.location == CHALLENGE_RETURN
    final = provider.lookup(idempotency_key="pay_1")
    assert final is not None
    assert (final.status, final.failure_reason, final.action_url) == (status, reason, None)
    # Asking again with the same key answers the final outcome; still one charge.
    assert charge(provider, card) == final
    assert provider.charge_count == 1
    # The decision is final: the other button changes nothing.
    other = "fail" if decision == "approve" else "approve"
    again = client.get(result.action_url)
    assert "already" in again.text
    assert f'href="{CHALLENGE_RETURN}"' in again.text
    token = csrf_token(page.text)
    response = client.post(result.action_url, data={"csrf_token": token, "decision": other})
    assert response.status_code == 303
    assert provider.lookup(idempotency_key="pay_1") == final


@pytest.mark.parametrize("failure", ["crash", "timeout"])
def test_failure_after_charging(app: Flask, client: FlaskClient, failure: str) -> None:
    """P4: the charge is made, the portal gets ProviderError; lookup then tells the outcome."""
    provider = provider_of(app)
    card = add_card(app, client, "4242424242424242")
    provider.fail_after_charge = failure  # type: ignore[assignment]
    with pytest.raises(ProviderError):
        charge(provider, card)
    assert provider.charge_count == 1
    settled = provider.lookup(idempotency_key="pay_1")
    assert settled is not None and settled.status == "succeeded"
    # Retrying with the same key never charges again.
    with pytest.raises(ProviderError):
        charge(provider, card)
    provider.fail_after_charge = None
    assert charge(provider, card) == settled
    assert provider.charge_count == 1


def test_failure_after_charging_from_the_constructor(
    database_url: str, app_factory: Callable[..., Flask]
) -> None:
    app = app_factory(
        database_url, portal_options={"test_provider": TestProvider(fail_after_charge="crash")}
    )
    client = app.test_client()
    provider = provider_of(app)
    with app.app_context():
        card = add_card(app, client, "4242424242424242")
        with pytest.raises(ProviderError):
            charge(provider, card)
    assert provider.charges["pay_1"].status == "succeeded"


def test_pages_follow_register_blueprint(
    database_url: str, app_factory: Callable[..., Flask]
) -> None:
    """Without the portal's views, the test provider's pages are not served either."""
    app = app_factory(database_url, portal_options={"register_blueprint": False})
    assert "customer_portal_test_provider.setup" not in app.view_functions


def test_no_card_number_is_kept_or_logged(
    app: Flask,
    client: FlaskClient,
    session: Session,
    customer: Customer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """P1: card numbers reach no log record, no portal table, no cookie, no provider record."""
    caplog.set_level(logging.DEBUG)
    provider = provider_of(app)
    numbers = ["4242424242424242", "4000002760003184", "4111111111111111"]
    ref = customer.public_id
    card = add_card(app, client, "4242 4242 4242 4242", customer_ref=ref)
    secure = add_card(app, client, numbers[1], customer_ref=ref)
    url = provider.begin_card_setup(customer_ref=ref, email=customer.email, return_url=RETURN_URL)
    assert enter_card(client, url, numbers[2]).status_code == 400
    charge(provider, card, customer_ref=ref)
    action = charge(provider, secure, key="pay_2", customer_ref=ref).action_url
    assert action is not None
    page = client.get(action)
    client.post(action, data={"csrf_token": csrf_token(page.text), "decision": "approve"})

    logged = caplog.text + "".join(str(record.args) for record in caplog.records)
    cookie = client.get_cookie("session")
    cookies = cookie.decoded_value if cookie else ""
    kept = repr(vars(provider))
    session.expire_all()
    everything = "".join(row for _, row in stored_rows(session))
    for number in numbers:
        for text in (logged, cookies, kept, everything):
            assert number not in text
