"""P1: no column, form or log line of the portal ever holds a card number."""

from __future__ import annotations

import logging
import re
from itertools import cycle
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

import flask_customer_portal as portal
from flask_customer_portal import cards
from flask_customer_portal import models as m
from flask_customer_portal.db import Base
from flask_customer_portal.errors import ValidationError
from flask_customer_portal.providers import SavedCard

from .conftest import csrf_token, sign_in_with_link
from .helpers import SUCCEEDS, add_card

#: Luhn-valid numbers, written the ways people paste them (Visa, Amex, Discover, Mastercard).
CARD_NUMBERS = (
    "4242 4242 4242 4242",
    "3782-822463-10005",
    "6011111111111117",
    "  5555 5555 5555 4444 ",
    "4000-0027-6000-3184",
)
#: Form fields the portal's pages have, plus one no page has.
FIELDS = ("email", "name", "phone", "payment_method", "idempotency_key", "when", "card")
REFUSED = "That looks like a card number"

#: What a saved card is allowed to keep (P1): the token and what the customer recognises.
PAYMENT_METHOD_COLUMNS = {
    "id",
    "public_id",
    "customer_id",
    "provider_token",
    "brand",
    "last4",
    "exp_month",
    "exp_year",
    "is_default",
    "created_at",
}


def digits(text: str) -> str:
    return re.sub(r"\D", "", text)


def stored_values(session: Session) -> list[str]:
    """Every text, JSON and binary value in every portal table, as text."""
    session.expire_all()
    values = []
    for table in Base.metadata.sorted_tables:
        for row in session.execute(sa.select(table)):
            values += [str(value) for value in row if isinstance(value, str | bytes | dict | list)]
    return values


def assert_nowhere(number: str, session: Session, caplog: pytest.LogCaptureFixture) -> None:
    """The number, in any spacing, is in no table and no log record."""
    wanted = digits(number)
    for value in stored_values(session):
        assert wanted not in digits(value), value
    for record in caplog.records:
        text = f"{record.getMessage()} {record.args!r} {record.exc_text or ''}"
        assert wanted not in digits(text), record.getMessage()


def test_no_column_is_made_to_hold_a_card_number(app: Flask, customer: m.Customer) -> None:
    """P1: a saved card keeps only the provider's token, brand, last four and expiry; no
    column anywhere is named for a card number or code; the provider's token is the one
    column that could hold sixteen digits, and a card-like token is refused."""
    assert {column.name for column in m.PaymentMethod.__table__.columns} == (PAYMENT_METHOD_COLUMNS)
    for table in Base.metadata.sorted_tables:
        for column in table.columns:
            assert not re.search(r"card|pan$|cvc|cvv|security_code", column.name), column
    assert m.PaymentMethod.__table__.c.last4.type.length == 4
    for number in CARD_NUMBERS:
        card = SavedCard(token=number, brand="visa", last4="4242", exp_month=12, exp_year=2034)
        with pytest.raises(ValidationError, match="card number"):
            cards.save_card(customer, card)
    saved = cards.save_card(customer, SavedCard("card_tok_1", "visa", "4242", 12, 2034))
    assert saved.provider_token == "card_tok_1" and cards.list_payment_methods(customer) == [saved]


def test_the_database_refuses_more_than_four_digits_of_a_card(
    session: Session, customer: m.Customer
) -> None:
    """P1: whatever code writes the row, ``last4`` holds four characters, not a number."""
    session.add(
        m.PaymentMethod(
            customer_id=customer.id,
            provider_token="card_tok_2",
            brand="visa",
            last4="4242424242424242",
            exp_month=12,
            exp_year=2034,
        )
    )
    with pytest.raises(sa.exc.DBAPIError):  # a check (SQLite), a varchar(4) (PostgreSQL)
        session.commit()
    session.rollback()


def post_routes(app: Flask) -> list[Any]:
    return [
        rule
        for rule in app.url_map.iter_rules()
        if rule.endpoint.startswith("customer_portal.") and "POST" in (rule.methods or ())
    ]


@pytest.fixture
def ana_on_hold(client: FlaskClient, customer: m.Customer) -> dict[str, str]:
    """Ana, signed in, with a subscription on hold: the URL values of her objects."""
    subscription = portal.start_subscription(
        customer, product="Acme Cloud", plan="Pro", price=2900, currency="USD"
    )
    invoice = portal.record_failed_renewal(subscription, reason="Your card was declined.")
    card = add_card(customer, SUCCEEDS)
    sign_in_with_link(client, customer)
    return {
        "business_id": customer.business.public_id,
        "token": "t" * 43,
        "subscription_id": subscription.public_id,
        "invoice_id": invoice.public_id,
        "payment_id": "py_" + "0" * 20,
        "method_id": card.public_id,
    }


def test_a_card_number_posted_to_any_form_is_refused_and_never_kept(
    app: Flask,
    client: FlaskClient,
    session: Session,
    ana_on_hold: dict[str, str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """P1: every POST route of the portal (walked from ``app.url_map``) refuses a Luhn-valid
    number in any field with a clear 400; afterwards it is in no table and no log record."""
    caplog.set_level(logging.DEBUG)
    token = csrf_token(client.get("/portal/").text)
    routes = post_routes(app)
    assert {"customer_portal.payment_method", "customer_portal.add_card"} <= {
        rule.endpoint for rule in routes
    }
    fields = cycle(FIELDS)
    for rule in routes:
        unknown = set(rule.arguments) - set(ana_on_hold) - set(rule.defaults or {})
        assert not unknown, f"teach this test the arguments {unknown} of {rule.rule}"
        path = rule.build(ana_on_hold, append_unknown=False)[1]
        for number in CARD_NUMBERS:
            field = next(fields)
            response = client.post(path, data={"csrf_token": token, field: number})
            assert response.status_code == 400, (path, field)
            assert REFUSED in response.text and "nothing was saved" in response.text
            assert digits(number) not in digits(response.text)
    # Ana is still signed in: the refusals happened before any view ran (logout included).
    assert client.get("/portal/").status_code == 200
    for number in CARD_NUMBERS:
        assert_nowhere(number, session, caplog)


def test_a_card_number_typed_again_and_again_at_sign_in_is_never_logged(
    app: Flask,
    client: FlaskClient,
    session: Session,
    business: m.Business,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """P1: pasted into the sign-in form more often than the per-email rate limit allows, the
    number is refused every time before the limiter keys on it (its breach log line names
    the key), so it reaches no log record and no table."""
    caplog.set_level(logging.DEBUG)
    page = client.get("/portal/test/login/acme")
    statuses = {
        client.post(
            "/portal/test/login/acme",
            data={"csrf_token": csrf_token(page.text), "email": CARD_NUMBERS[0]},
        ).status_code
        for _ in range(8)
    }
    assert statuses == {400}
    assert_nowhere(CARD_NUMBERS[0], session, caplog)


def test_a_phone_number_in_international_form_is_not_mistaken_for_a_card(
    client: FlaskClient, session: Session, signed_in: m.Customer
) -> None:
    """P1 without false alarms: +55 11 98765-4325 passes the Luhn check, yet it is a phone."""
    page = client.get("/portal/profile")
    form = {"name": "Ana Souza", "email": "ana@example.com", "phone": "+55 11 98765-4325"}
    response = client.post("/portal/profile", data={**form, "csrf_token": csrf_token(page.text)})
    assert response.status_code == 303
    session.refresh(signed_in)
    assert signed_in.phone == "+5511987654325"


#: A card number hidden among other text, as someone might type or paste it, and its digits.
HIDDEN_NUMBERS = {
    "4242 4242 4242 4242 12/34 123": "4242424242424242",
    "Card: 4242424242424242, thanks": "4242424242424242",
    "+4242 4242 4242 4242": "4242424242424242",
    "+55 4000-0027-6000-3184": "4000002760003184",
}
EMAIL_NUMBER = "4242424242424242@example.com"


def count_outbox(session: Session) -> int:
    return int(session.scalar(sa.select(sa.func.count()).select_from(m.OutboxMessage)) or 0)


@pytest.mark.parametrize("value", HIDDEN_NUMBERS)
@pytest.mark.parametrize("field", ["name", "phone", "email"])
def test_a_card_number_among_other_text_is_refused_in_every_field(
    client: FlaskClient,
    session: Session,
    signed_in: m.Customer,
    caplog: pytest.LogCaptureFixture,
    field: str,
    value: str,
) -> None:
    """P1: a number with its expiry and code, among words, or after a "+" is refused in any
    field of the profile form; nothing is saved or queued, and no log record holds it."""
    caplog.set_level(logging.DEBUG)
    form = {"name": "Ana Souza", "email": "ana@example.com", "phone": ""}
    token = csrf_token(client.get("/portal/profile").text)
    response = client.post("/portal/profile", data={**form, field: value, "csrf_token": token})
    assert response.status_code == 400
    assert REFUSED in response.text
    assert count_outbox(session) == 0
    assert_nowhere(HIDDEN_NUMBERS[value], session, caplog)


def test_a_card_number_as_an_email_address_is_refused(
    client: FlaskClient,
    session: Session,
    signed_in: m.Customer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """P1: an email change to ``4242424242424242@example.com`` queues no confirmation mail;
    the sign-in form refuses the address too."""
    caplog.set_level(logging.DEBUG)
    token = csrf_token(client.get("/portal/profile").text)
    form = {"name": "Ana Souza", "email": EMAIL_NUMBER, "phone": "", "csrf_token": token}
    response = client.post("/portal/profile", data=form)
    assert response.status_code == 400 and REFUSED in response.text
    login = client.post(
        "/portal/test/login/acme", data={"csrf_token": token, "email": EMAIL_NUMBER}
    )
    assert login.status_code == 400 and REFUSED in login.text
    assert count_outbox(session) == 0
    assert_nowhere(EMAIL_NUMBER, session, caplog)


@pytest.mark.parametrize("value", [*HIDDEN_NUMBERS, EMAIL_NUMBER])
def test_the_data_api_refuses_a_card_number_in_any_text(
    session: Session, business: m.Business, customer: m.Customer, value: str
) -> None:
    """P1: the merchant's code gets the same refusal (code ``card_number``) in a name, an
    email, an address or a product; nothing is written."""
    calls = {
        "name": lambda: portal.upsert_customer(business, "bruno@example.com", name=value),
        "email": lambda: portal.upsert_customer(business, value),
        "address": lambda: portal.update_business(business, address="Rua Augusta\n" + value),
        "product": lambda: portal.start_subscription(
            customer, product=value, price=2900, currency="USD"
        ),
    }
    number = HIDDEN_NUMBERS.get(value, "4242424242424242")
    for field, call in calls.items():
        with pytest.raises(ValidationError) as error:
            call()
        assert (error.value.field, error.value.code) == (field, "card_number")
        assert number not in digits(str(error.value))
    assert all(number not in digits(stored) for stored in stored_values(session))


def test_a_long_number_that_is_not_a_card_is_accepted(
    client: FlaskClient, session: Session, signed_in: m.Customer
) -> None:
    """P1 without false alarms: a 16-digit order reference that fails the Luhn check is
    text like any other, on the pages and in the data API."""
    reference = "Order 4242424242424241"
    token = csrf_token(client.get("/portal/profile").text)
    form = {"name": reference, "email": "ana@example.com", "phone": "", "csrf_token": token}
    assert client.post("/portal/profile", data=form).status_code == 303
    session.refresh(signed_in)
    assert signed_in.name == reference
    subscription = portal.start_subscription(
        signed_in, product="Acme Cloud", plan="Ref 4242-4242-4242-4241", price=2900, currency="USD"
    )
    assert subscription.plan == "Ref 4242-4242-4242-4241"
