"""Structured log lines: what happened in an account, and never a secret (T2, T7, P1)."""

from __future__ import annotations

import logging
import re

import pytest
from flask import Flask
from flask.testing import FlaskClient

import flask_customer_portal as portal
from flask_customer_portal import cards, payments
from flask_customer_portal import models as m

from .conftest import EXTERNAL_URL, csrf_token, open_link, single_use_id
from .helpers import PAYMENT_RETURN_URL, SUCCEEDS, enter_card, put_on_hold

AUDIT = "flask_customer_portal.audit"


def test_each_event_is_one_line_with_ids_and_never_a_secret(
    app: Flask,
    client: FlaskClient,
    customer: m.Customer,
    subscription: m.Subscription,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """T2, T7, P1: a sign-in link and a card number in flight, a payment and a sign-out are
    logged as events with public ids; no log line of any logger holds the link's token, its
    single-use id, the card's number or token, or the customer's email address."""
    caplog.set_level(logging.DEBUG)
    put_on_hold(subscription)
    link = portal.create_portal_session(customer)
    token = link.url.rsplit("/", 1)[1]
    assert open_link(client, link.url).status_code == 303
    edit = f"/portal/subscriptions/{subscription.public_id}/payment-method"
    page = client.get(edit)
    to_provider = client.post(edit + "/new-card", data={"csrf_token": csrf_token(page.text)})
    saved = enter_card(client, to_provider.location.removeprefix(EXTERNAL_URL), SUCCEEDS)
    back = saved.location.removeprefix(EXTERNAL_URL)
    shown = client.get(back)
    setup_id = re.search(r'name="setup_id" value="([\w-]+)"', shown.text)
    assert setup_id is not None
    added = client.post(back, data={"csrf_token": csrf_token(shown.text), "setup_id": setup_id[1]})
    assert added.status_code == 303
    (card,) = cards.list_payment_methods(customer)
    outcome = payments.change_payment_method(
        subscription, card, idempotency_key="key-1", return_url=PAYMENT_RETURN_URL
    )
    assert outcome.status == "succeeded" and outcome.payment is not None
    client.post("/portal/logout", data={"csrf_token": csrf_token(client.get("/portal/").text)})

    events = [(r.event, r.fields) for r in caplog.records if r.name == AUDIT]
    ids = {"customer": customer.public_id}
    assert events == [
        (
            "link_issued",
            {
                **ids,
                "purpose": "portal_session",
                "expires_at": link.expires_at.isoformat(timespec="seconds"),
            },
        ),
        ("sign_in", {**ids, "business": "acme", "mode": "test", "method": "link"}),
        (
            "payment_attempt",
            {
                "payment": outcome.payment.public_id,
                "subscription": subscription.public_id,
                "invoice": outcome.payment.invoice.public_id,
                "payment_method": card.public_id,
                "amount": 2900,
                "currency": "USD",
            },
        ),
        ("payment_settled", {"payment": outcome.payment.public_id, "status": "succeeded"}),
        (
            "subscription_reactivated",
            {"subscription": subscription.public_id, "payment": outcome.payment.public_id},
        ),
        ("session_revoked", {**ids, "reason": "sign_out", "count": 1}),
    ]
    for record in caplog.records:
        if record.name == AUDIT:
            assert re.fullmatch(r"[a-z_]+( [a-z_]+=\S+)*", record.getMessage()), record.getMessage()
    logged = caplog.text + "".join(str(record.args) for record in caplog.records)
    secrets = (token, single_use_id(token), "4242424242424242", "4242 4242 4242 4242")
    for secret in (*secrets, card.provider_token, customer.email):
        assert secret not in logged
