"""Every form of the customer's pages, fuzzed with Hypothesis (V1, D3, P1, P2).

Each example gives Ana a fresh start (signed in just now, a subscription on
hold, a card that pays, a sign-in link, an email-change link and a finished card
setup of her own) and draws one set of fields: the pages' own field names and
made-up ones, with text, unicode, control characters, empty and huge values,
card-number-like digit runs, and real values. It posts them, with a valid CSRF
token, to every POST route of the ``customer_portal`` blueprint (walked from
``app.url_map``), half the time over the form the page itself would send, so
that many requests get past validation to where the writing is done.

Whatever is posted: no 5xx; a refusal (4xx) leaves every row of every table as
it was; every answer leaves the billing state sound. Derandomized and bounded,
so every run posts the same forms.
"""

from __future__ import annotations

import itertools
import secrets
from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from sqlalchemy.orm import Session
from werkzeug.datastructures import MultiDict

import flask_customer_portal as portal
from flask_customer_portal import cards, links
from flask_customer_portal import models as m

from .conftest import EXTERNAL_URL, provider_of, sign_in_with_link
from .helpers import SUCCEEDS, add_card, form_token, put_on_hold, stored_rows

#: Field names the portal's forms read, plus one no form has.
FIELDS = (
    "email",
    "name",
    "phone",
    "locale",
    "next",
    "when",
    "payment_method",
    "idempotency_key",
    "setup_id",
    "decision",
    "card",
)
#: Routes that end what the others need (the sign-in, the subscription): posted last.
ENDING = (
    "customer_portal.confirm_email",
    "customer_portal.test_confirm_email",
    "customer_portal.profile",  # after the email-change link: a new request revokes it
    "customer_portal.cancel_subscription",
    "customer_portal.logout",
)

#: Text of every kind: any character but a lone surrogate (no browser sends one).
_ANY_TEXT = st.text(st.characters(exclude_categories=("Cs",)), max_size=40)
_CONTROL = st.text(st.characters(max_codepoint=0x1F) | st.sampled_from("\x7f\u2028\ufeff"))
#: Digit runs like card numbers, in any script's digits, spaced or not.
_DIGIT_RUNS = st.from_regex(r"\A[ +]?\d{4}([ -]?\d{2,6}){1,4} ?\Z") | st.sampled_from(
    ["4242 4242 4242 4242", "4000-0027-6000-3184", "378282246310005", "+4242424242424242"]
)
#: Values past every length limit, up to past the form size cap (64 KiB).
_HUGE = st.sampled_from(["x", "9", "é", "\x00"]).flatmap(
    lambda char: st.sampled_from([300, 3_000, 70_000]).map(lambda size: char * size)
)
_new_addresses = itertools.count(1)
#: A page with a form whether signed in or not, to read the browser's CSRF token from.
LOGIN_PAGE = "/portal/test/login/acme"


@pytest.fixture
def app(database_url: str, app_factory: Callable[..., Flask]) -> Flask:
    """The portal app, with rate limits that no fuzz run reaches."""
    return app_factory(
        database_url,
        CUSTOMER_PORTAL_LOGIN_RATE_LIMIT_IP="100000 per minute",
        CUSTOMER_PORTAL_LOGIN_RATE_LIMIT_EMAIL="100000 per minute",
        CUSTOMER_PORTAL_REDEEM_RATE_LIMIT="100000 per minute",
    )


def portal_post_routes(app: Flask) -> list[Any]:
    """Every POST rule of the customer's pages, those in :data:`ENDING` last."""
    rules = [
        rule
        for rule in app.url_map.iter_rules()
        if rule.endpoint.startswith("customer_portal.") and "POST" in (rule.methods or ())
    ]
    last = {endpoint: position for position, endpoint in enumerate(ENDING, 1)}
    return sorted(rules, key=lambda rule: (last.get(rule.endpoint, 0), rule.endpoint))


def token_of(url: str) -> str:
    return url.rsplit("/", 1)[1]


def mostly(usual: str, *odd: str) -> st.SearchStrategy[str]:
    """``usual`` four times in five, else one of ``odd``."""
    return st.one_of(*[st.just(usual)] * 4, st.sampled_from(odd))


def check_sound(session: Session) -> None:
    """The billing invariants (P2) that every answer leaves true."""
    session.expire_all()
    for subscription in session.scalars(sa.select(m.Subscription)):
        total, dues = portal.outstanding_dues(subscription)
        if subscription.status == "active":
            assert dues == [], f"{subscription.public_id} is active with {total} unpaid"
        in_flight = session.scalar(
            sa.select(sa.func.count()).where(
                m.Payment.subscription_id == subscription.id, m.Payment.status.in_(m.IN_FLIGHT)
            )
        )
        assert in_flight <= 1, subscription.public_id
    for invoice in session.scalars(sa.select(m.Invoice).filter_by(status="paid")):
        paid = session.scalar(
            sa.select(sa.func.coalesce(sa.func.sum(m.Payment.amount), 0)).filter_by(
                invoice_id=invoice.id, status="succeeded"
            )
        )
        assert paid == invoice.total, f"invoice {invoice.number} is paid with {paid}"


@settings(
    max_examples=40,
    deadline=None,
    derandomize=True,  # the same forms on every run: CI never fails by chance
    database=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)
@given(data=st.data())
def test_no_form_input_breaks_a_page_or_writes_half(
    app: Flask, session: Session, customer: m.Customer, data: st.DataObject
) -> None:
    """V1, D3: any fields on every form: no 5xx; a 4xx writes nothing; the state stays sound."""
    # A fresh start for each example: the one before may have signed out or cancelled.
    subscription = portal.start_subscription(
        customer, product="Acme Cloud", plan="Pro", price=2900, currency="USD"
    )
    put_on_hold(subscription)
    card = add_card(customer, SUCCEEDS)
    one_off = portal.issue_invoice(
        customer, [{"description": "Setup", "unit_amount": 4900}], currency="USD"
    )
    setup_id = token_of(cards.begin_card_setup(customer, return_url=EXTERNAL_URL + "/back"))
    provider_of(app).save_card(setup_id, number=SUCCEEDS, expiry="12/34", cvc="123")
    sign_in = links.new_link(customer, "portal_session")
    new_email = f"ana.{next(_new_addresses)}@example.com"
    email_change = links.new_link(customer, "email_change", new_email=new_email)
    session.commit()
    client = app.test_client()
    assert sign_in_with_link(client, customer).status_code == 303

    # What each page's own form sends.
    page_forms: dict[str, dict[str, str]] = {
        "login": {"email": customer.email},
        "profile": {"name": "Ana Souza", "email": new_email, "phone": "+55 11 98765-4321"},
        "cancel_subscription": {"when": "period_end"},
        "payment_method": {
            "payment_method": card.public_id,
            "idempotency_key": secrets.token_urlsafe(32),
        },
        "card_added": {"setup_id": setup_id},
        "set_language": {"locale": "pt_BR", "next": "/portal/billing"},
    }
    real = st.sampled_from(
        [
            card.public_id,
            setup_id,
            secrets.token_urlsafe(32),
            subscription.public_id,
            customer.email,
            "es",
            "/portal/subscriptions",
            "now",
            "approve",
        ]
    )
    value = st.one_of(
        real, real, real, _ANY_TEXT, _ANY_TEXT, _CONTROL, _DIGIT_RUNS, _HUGE, st.just("")
    )
    name = st.one_of(*[st.sampled_from(FIELDS)] * 4, st.text(max_size=12))
    fields = data.draw(st.lists(st.tuples(name, value), max_size=5), label="fields")
    alone = data.draw(st.booleans(), label="fields alone, not over the page's form")
    url_values = {
        "business_id": data.draw(mostly("acme", "globex", "x" * 300), label="business"),
        "subscription_id": data.draw(
            mostly(subscription.public_id, "sub_" + "0" * 20), label="subscription"
        ),
        "invoice_id": data.draw(mostly(one_off.public_id, "in_" + "0" * 20), label="invoice"),
        "method_id": data.draw(mostly(card.public_id, "pm_" + "0" * 20), label="card"),
    }
    tokens = {
        "open_link": data.draw(mostly(token_of(sign_in.url), "t" * 43, "a.b.c"), label="link"),
        "confirm_email": data.draw(
            mostly(token_of(email_change.url), "t" * 43, "%00"), label="email link"
        ),
    }

    rows = stored_rows(session)
    token = form_token(client, LOGIN_PAGE)
    for rule in portal_post_routes(app):
        page = rule.endpoint.removeprefix("customer_portal.").removeprefix("test_")
        path = rule.build({**url_values, "token": tokens.get(page, "")}, append_unknown=False)[1]
        # The generated fields come first: a form's value is the first one of its name.
        own = {} if alone else page_forms.get(page, {})
        form = MultiDict([("csrf_token", token), *fields, *own.items()])
        response = client.post(path, data=form)
        event(f"{page}: {response.status_code}")

        assert response.status_code < 500, path
        session.expire_all()
        if 400 <= response.status_code < 500:
            assert stored_rows(session) == rows, f"{path} refused with {response.status_code}"
        else:
            rows = stored_rows(session)
            check_sound(session)
            # A sign-in starts a new browser session, with a CSRF token of its own (T10).
            token = form_token(client, LOGIN_PAGE)
