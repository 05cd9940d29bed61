"""The payment-method pages, driven like a person: add cards on the provider's page, pay dues.

Every test goes through the real pages: the portal's, and the test provider's
card and challenge pages, with their CSRF tokens (P1, P3, P4, T12, Z1, C1).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
import time_machine
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.orm import Session
from werkzeug.test import TestResponse

import flask_customer_portal as portal
from flask_customer_portal import emails
from flask_customer_portal import models as m
from flask_customer_portal.db import utcnow
from flask_customer_portal.providers.test import TestProvider

from .conftest import EXTERNAL_URL, csrf_token, local_mail_app, sign_in_with_link
from .helpers import AUTHENTICATE, CHARGE_FAILS, DECLINED, SUCCEEDS, enter_card

CHECKED = re.compile(r'name="payment_method" value="(pm_\w+)" checked')
SETUP_ID = re.compile(r'name="setup_id" value="([\w-]+)"')
KEY = re.compile(r'name="idempotency_key" value="([\w-]+)"')


app = local_mail_app  # mail stays in memory, so tests read what was sent


@pytest.fixture
def bruno(business: m.Business) -> m.Customer:
    return portal.upsert_customer(business, "bruno@example.com", name="Bruno Lima")


@pytest.fixture
def on_hold(bruno: m.Customer) -> m.Subscription:
    """Like the demo's Bruno: Starter at $15.00 a month, two renewals failed, $30.00 due."""
    subscription = portal.start_subscription(
        bruno,
        product="Acme Cloud",
        plan="Starter",
        price=1500,
        currency="USD",
        start=utcnow() - timedelta(days=70),
    )
    for reason in ("Your card was declined.", "Your card has insufficient funds."):
        portal.record_failed_renewal(subscription, reason=reason)
    return subscription


@pytest.fixture
def bruno_signed_in(client: FlaskClient, bruno: m.Customer, on_hold: m.Subscription) -> m.Customer:
    assert sign_in_with_link(client, bruno).status_code == 303
    return bruno


def found(pattern: re.Pattern[str], page: str) -> str:
    """Return what ``pattern`` captures on ``page`` (a hidden field, the checked card)."""
    match = pattern.search(page)
    assert match, pattern.pattern
    return match[1]


def edit_path(subscription: m.Subscription) -> str:
    return f"/portal/subscriptions/{subscription.public_id}/payment-method"


def local(url: str) -> str:
    """The path of an absolute link the portal or the provider built from EXTERNAL_URL."""
    assert url.startswith(EXTERNAL_URL + "/portal/"), url
    return url.removeprefix(EXTERNAL_URL)


def add_card(client: FlaskClient, subscription: m.Subscription, number: str) -> TestResponse:
    """Press "Add a new card", type ``number`` on the provider's page; return the edit page."""
    page = client.get(edit_path(subscription))
    assert "Add a new card" in page.text
    to_provider = client.post(
        edit_path(subscription) + "/new-card", data={"csrf_token": csrf_token(page.text)}
    )
    assert to_provider.status_code == 303
    card_page_path = local(to_provider.location)
    assert card_page_path.startswith("/portal/test-provider/setup/")
    saved = enter_card(
        client, card_page_path, number, shows=("Test payment page", "4242 4242 4242 4242")
    )
    assert saved.status_code == 303
    returned = client.get(local(saved.location))
    assert returned.status_code == 200 and f"Visa ending in {number[-4:]}" in returned.text
    back = client.post(
        local(saved.location),
        data={"csrf_token": csrf_token(returned.text), "setup_id": found(SETUP_ID, returned.text)},
    )
    assert back.status_code == 303
    assert back.location.startswith(edit_path(subscription) + "?card=pm_")
    edit_page = client.get(back.location)
    assert edit_page.status_code == 200
    assert f"Visa ending in {number[-4:]} added" in edit_page.text
    return edit_page


def confirm(client: FlaskClient, subscription: m.Subscription, page: str | None = None) -> Any:
    """Press "Confirm changes" on the edit page (``page``, or a fresh one): the card checked."""
    page = page if page is not None else client.get(edit_path(subscription)).text
    assert "Confirm changes" in page
    return client.post(
        edit_path(subscription),
        data={
            "csrf_token": csrf_token(page),
            "idempotency_key": found(KEY, page),
            "payment_method": found(CHECKED, page),
        },
    )


def succeeded(provider: TestProvider) -> int:
    """How many charges the provider made that took money."""
    return sum(charge.status == "succeeded" for charge in provider.charges.values())


def payments_of(session: Session, subscription: m.Subscription) -> list[tuple[str, int]]:
    session.expire_all()
    rows = session.execute(
        sa.select(m.Payment.status, m.Payment.amount)
        .filter_by(subscription_id=subscription.id)
        .order_by(m.Payment.id)
    )
    return [(status, amount) for status, amount in rows]


def test_bruno_is_declined_then_pays_and_is_active_again(
    client: FlaskClient,
    session: Session,
    provider: TestProvider,
    bruno_signed_in: m.Customer,
    on_hold: m.Subscription,
) -> None:
    """P1, P3, P5: a declined card leaves the plan on hold, in plain words; a good card pays
    the dues once, issues a paid invoice with its PDF, reactivates the plan and sends two emails."""
    overview = client.get("/portal/")
    assert f'href="{edit_path(on_hold)}">Update payment method' in overview.text
    listing = client.get("/portal/subscriptions")
    assert "Payment method: none yet." in listing.text
    assert f'href="{edit_path(on_hold)}">Edit' in listing.text

    page = client.get(edit_path(on_hold))
    assert page.status_code == 200
    assert "<strong>$30.00</strong> (the 2 unpaid invoices)" in page.text
    assert "You have no saved cards yet." in page.text

    declined = confirm(client, on_hold, add_card(client, on_hold, DECLINED).text)
    assert declined.status_code == 400
    assert "Your card was declined." in declined.text
    assert "subscription is still on hold" in declined.text
    session.refresh(on_hold)
    assert on_hold.status == "on_hold" and on_hold.payment_method_id is None
    assert succeeded(provider) == 0 and len(provider.charges) == 1

    response = confirm(client, on_hold, add_card(client, on_hold, SUCCEEDS).text)
    assert response.status_code == 303
    assert re.fullmatch(r"/portal/payments/py_\w+", response.location)
    confirmation = client.get(response.location)
    assert "Payment received" in confirmation.text
    assert "$30.00 was charged to Visa ending in 4242" in confirmation.text
    assert "Acme Cloud Starter is active again" in confirmation.text

    session.refresh(on_hold)
    assert on_hold.status == "active" and on_hold.next_billing_at is not None
    assert on_hold.payment_method is not None and on_hold.payment_method.last4 == "4242"
    assert succeeded(provider) == 1
    assert payments_of(session, on_hold)[-2:] == [("failed", 3000), ("succeeded", 3000)]
    statuses = session.scalars(
        sa.select(m.Invoice.status).filter_by(subscription_id=on_hold.id).order_by(m.Invoice.id)
    ).all()
    assert statuses == ["void", "void", "void", "paid"]  # two dues, the declined try, the paid one
    paid = session.scalars(sa.select(m.Invoice).filter_by(status="paid")).one()
    assert paid.total == 3000 and f"See invoice {paid.number}" in confirmation.text

    history = client.get("/portal/billing")
    assert paid.number in history.text
    pdf_link = f"/portal/billing/invoices/{paid.public_id}.pdf"
    assert pdf_link in history.text
    pdf = client.get(pdf_link)
    assert pdf.status_code == 200 and pdf.data.startswith(b"%PDF")

    listing = client.get("/portal/subscriptions")
    assert "Payment method: Visa ending in 4242" in listing.text
    assert "Needs your attention" not in client.get("/portal/").text

    emails.send_queued()
    subjects = sorted(
        message["subject"]
        for message in portal.local_messages()
        if message["recipient"] == "bruno@example.com"
    )
    assert subjects == [
        "Payment received: $30.00",
        "Your Acme Cloud Starter subscription is active again",
    ]


def test_a_card_that_needs_the_bank_goes_through_the_challenge(
    client: FlaskClient,
    session: Session,
    provider: TestProvider,
    bruno_signed_in: m.Customer,
    on_hold: m.Subscription,
) -> None:
    """Requires action: to the bank's page, Approve, back to the confirmation; one charge."""
    response = confirm(client, on_hold, add_card(client, on_hold, AUTHENTICATE).text)
    assert response.status_code == 303
    challenge_path = local(response.location)
    assert challenge_path.startswith("/portal/test-provider/challenge/")
    session.refresh(on_hold)
    assert on_hold.status == "on_hold"
    assert payments_of(session, on_hold)[-1] == ("requires_action", 3000)

    waiting = client.get(edit_path(on_hold))
    assert "not finished yet" in waiting.text and "confirm it with your bank" in waiting.text

    challenge = client.get(challenge_path)
    assert "Approve" in challenge.text and "$30.00" in challenge.text
    back = client.post(
        challenge_path, data={"csrf_token": csrf_token(challenge.text), "decision": "approve"}
    )
    assert back.status_code == 303
    return_path = local(back.location)
    assert re.fullmatch(r"/portal/payments/py_\w+/return", return_path)
    settled = client.get(return_path)
    assert settled.status_code == 303 and return_path == settled.location + "/return"
    confirmation = client.get(settled.location)
    assert "Payment received" in confirmation.text and "active again" in confirmation.text
    session.refresh(on_hold)
    assert on_hold.status == "active"
    assert succeeded(provider) == 1 and len(provider.charges) == 1
    # Coming back again (a reload of the return address) changes nothing.
    assert client.get(return_path).status_code == 303
    assert payments_of(session, on_hold)[-1] == ("succeeded", 3000)


def test_failing_the_challenge_leaves_the_plan_on_hold(
    client: FlaskClient,
    session: Session,
    provider: TestProvider,
    bruno_signed_in: m.Customer,
    on_hold: m.Subscription,
) -> None:
    """Requires action, then Fail: the failure page says why, nothing is charged, retry works."""
    response = confirm(client, on_hold, add_card(client, on_hold, AUTHENTICATE).text)
    challenge_path = local(response.location)
    challenge = client.get(challenge_path)
    back = client.post(
        challenge_path, data={"csrf_token": csrf_token(challenge.text), "decision": "fail"}
    )
    settled = client.get(local(back.location))
    failure = client.get(settled.location)
    assert failure.status_code == 200
    assert "The payment did not go through" in failure.text
    assert "The bank declined the authentication." in failure.text
    assert "still on hold" in failure.text and "Try again with another card" in failure.text
    session.refresh(on_hold)
    assert on_hold.status == "on_hold"
    assert succeeded(provider) == 0
    # The retry is a new attempt (a new key from a fresh form), with another card.
    retried = confirm(client, on_hold, add_card(client, on_hold, SUCCEEDS).text)
    assert retried.status_code == 303 and "Payment received" in client.get(retried.location).text
    assert succeeded(provider) == 1


def test_an_active_plan_only_switches_cards(
    client: FlaskClient,
    session: Session,
    provider: TestProvider,
    signed_in: m.Customer,
    subscription: m.Subscription,
) -> None:
    """An active subscription: choosing another saved card changes the method, charges nothing."""
    page = client.get(edit_path(subscription))
    assert "unpaid" not in page.text and "No payment method yet." in page.text
    first = confirm(client, subscription, add_card(client, subscription, SUCCEEDS).text)
    assert first.status_code == 303 and first.location == "/portal/subscriptions"
    listing = client.get(first.location)
    assert "Acme Cloud Pro will now be charged to Visa ending in 4242." in listing.text
    assert "Payment method: Visa ending in 4242" in listing.text

    add_card(client, subscription, CHARGE_FAILS)
    page = client.get(edit_path(subscription)).text
    # The current card stays checked; choose the other saved one.
    cards = re.findall(r'name="payment_method" value="(pm_\w+)"', page)
    assert len(cards) == 2 and found(CHECKED, page) == cards[0]
    second = client.post(
        edit_path(subscription),
        data={
            "csrf_token": csrf_token(page),
            "idempotency_key": found(KEY, page),
            "payment_method": cards[1],
        },
    )
    assert second.status_code == 303
    session.refresh(subscription)
    assert subscription.status == "active"
    assert subscription.payment_method is not None
    assert subscription.payment_method.last4 == "0341"
    assert provider.charge_count == 0 and payments_of(session, subscription) == []


def test_a_double_submit_charges_once(
    client: FlaskClient,
    session: Session,
    provider: TestProvider,
    bruno_signed_in: m.Customer,
    on_hold: m.Subscription,
) -> None:
    """P3: the same form sent twice (a double click, a reload) is one charge; a second tab
    confirming after the first paid changes the card only."""
    page = add_card(client, on_hold, SUCCEEDS).text
    second_tab = client.get(edit_path(on_hold)).text
    first, again = confirm(client, on_hold, page), confirm(client, on_hold, page)
    assert first.status_code == again.status_code == 303
    assert first.location == again.location
    assert provider.charge_count == 1 and succeeded(provider) == 1
    late = confirm(client, on_hold, second_tab)
    assert late.status_code == 303 and late.location == "/portal/subscriptions"
    assert provider.charge_count == 1
    assert payments_of(session, on_hold)[-1:] == [("succeeded", 3000)]
    assert [status for status, _ in payments_of(session, on_hold)].count("succeeded") == 1


def test_an_unknown_outcome_is_settled_on_return_with_the_same_key(
    client: FlaskClient,
    session: Session,
    provider: TestProvider,
    bruno_signed_in: m.Customer,
    on_hold: m.Subscription,
) -> None:
    """P4: the provider charges, then crashes; the page says the payment is being confirmed,
    and "Check again" learns the outcome from the provider: no second charge."""
    page = add_card(client, on_hold, SUCCEEDS).text
    provider.fail_after_charge = "crash"
    response = confirm(client, on_hold, page)
    assert response.status_code == 303
    waiting = client.get(response.location)
    assert "We are confirming your payment" in waiting.text
    assert "Check again" in waiting.text
    session.refresh(on_hold)
    assert on_hold.status == "on_hold"
    provider.fail_after_charge = None
    settled = client.get(response.location + "/return")
    assert settled.status_code == 303
    assert "Payment received" in client.get(settled.location).text
    session.refresh(on_hold)
    assert on_hold.status == "active"
    assert provider.charge_count == 1


def test_sensitive_posts_need_a_recent_sign_in(
    client: FlaskClient,
    session: Session,
    provider: TestProvider,
    bruno_signed_in: m.Customer,
    on_hold: m.Subscription,
) -> None:
    """T12: 16 minutes after sign-in, adding a card and confirming are refused with a way to
    sign in again; nothing is charged or changed."""
    page = add_card(client, on_hold, SUCCEEDS).text
    with time_machine.travel(utcnow() + timedelta(minutes=16), tick=False):
        shown = client.get(edit_path(on_hold))
        assert shown.status_code == 200 and "Confirm changes" not in shown.text
        assert "needs a recent sign-in" in shown.text
        refused = [
            confirm(client, on_hold, page),
            client.post(edit_path(on_hold) + "/new-card", data={"csrf_token": csrf_token(page)}),
        ]
    for response in refused:
        assert response.status_code == 403
        assert "needs a recent sign-in" in response.text and "Nothing was changed." in response.text
        assert '<a href="/portal/test/login/acme">Sign in again</a>' in response.text
    session.refresh(on_hold)
    assert on_hold.status == "on_hold" and on_hold.payment_method_id is None
    assert provider.charge_count == 0
    assert [status for status, _ in payments_of(session, on_hold)] == ["failed", "failed"]


def test_nobody_reaches_another_customers_payment_pages(
    app: Flask,
    client: FlaskClient,
    session: Session,
    provider: TestProvider,
    bruno_signed_in: m.Customer,
    on_hold: m.Subscription,
    customer: m.Customer,
    subscription: m.Subscription,
) -> None:
    """Z1: Ana gets a 404 on every payment route of Bruno's subscription and payment, and
    cannot charge Bruno's card to her own plan."""
    add_card(client, on_hold, AUTHENTICATE)
    confirm(client, on_hold)
    payment = session.scalars(
        sa.select(m.Payment).filter_by(subscription_id=on_hold.id, status="requires_action")
    ).one()
    card = session.scalars(sa.select(m.PaymentMethod).filter_by(customer_id=on_hold.customer_id))
    brunos_card = card.one().public_id

    ana = app.test_client()
    sign_in_with_link(ana, customer)
    own = ana.get(edit_path(subscription)).text
    token = csrf_token(own)
    theirs = edit_path(on_hold)
    for method, path in [
        ("GET", theirs),
        ("POST", theirs),
        ("POST", theirs + "/new-card"),
        ("GET", theirs + "/card-added?setup_id=x"),
        ("GET", f"/portal/payments/{payment.public_id}"),
        ("GET", f"/portal/payments/{payment.public_id}/return"),
    ]:
        data = {"csrf_token": token, "payment_method": brunos_card, "idempotency_key": "k" * 43}
        response = ana.open(path, method=method, data=data if method == "POST" else None)
        assert response.status_code == 404, (method, path)

    stolen = ana.post(
        edit_path(subscription),
        data={"csrf_token": token, "idempotency_key": "k" * 43, "payment_method": brunos_card},
    )
    assert stolen.status_code == 400 and "Choose a card" in stolen.text
    session.refresh(subscription)
    assert subscription.payment_method_id is None
    assert provider.charge_count == 1  # Bruno's own, waiting for his bank


def test_payment_posts_without_csrf_are_refused(
    client: FlaskClient,
    session: Session,
    provider: TestProvider,
    bruno_signed_in: m.Customer,
    on_hold: m.Subscription,
) -> None:
    """C1: without the form's CSRF token, nothing is added, changed or charged."""
    page = add_card(client, on_hold, SUCCEEDS).text
    form = {"idempotency_key": found(KEY, page), "payment_method": found(CHECKED, page)}
    assert client.post(edit_path(on_hold), data=form).status_code == 400
    assert client.post(edit_path(on_hold), data={**form, "csrf_token": "forged"}).status_code == 400
    assert client.post(edit_path(on_hold) + "/new-card").status_code == 400
    session.refresh(on_hold)
    assert on_hold.status == "on_hold" and provider.charge_count == 0


def test_an_ended_subscription_has_no_payment_method_to_change(
    client: FlaskClient,
    session: Session,
    provider: TestProvider,
    signed_in: m.Customer,
    subscription: m.Subscription,
) -> None:
    """An ended plan: the page says so and offers no form; a POST changes and charges nothing."""
    add_card(client, subscription, SUCCEEDS)
    page = client.get(edit_path(subscription)).text
    portal.cancel_subscription(subscription, at_period_end=False)
    shown = client.get(edit_path(subscription))
    assert "This subscription has ended" in shown.text and "Confirm changes" not in shown.text
    assert f'href="{edit_path(subscription)}"' not in client.get("/portal/subscriptions").text
    refused = confirm(client, subscription, page)
    assert refused.status_code == 400 and "This subscription has ended" in refused.text
    added = client.post(
        edit_path(subscription) + "/new-card", data={"csrf_token": csrf_token(page)}
    )
    assert added.status_code == 409
    session.refresh(subscription)
    assert subscription.status == "cancelled" and subscription.payment_method_id is None
    assert provider.charge_count == 0


def test_the_providers_return_page_saves_nothing_until_the_customer_posts(
    client: FlaskClient, session: Session, bruno_signed_in: m.Customer, on_hold: m.Subscription
) -> None:
    """C1: where the provider sends the customer back (a GET anyone could make a browser
    open) shows the card; only the CSRF-protected POST of its button saves it."""
    page = client.get(edit_path(on_hold))
    to_provider = client.post(
        edit_path(on_hold) + "/new-card", data={"csrf_token": csrf_token(page.text)}
    )
    saved = enter_card(client, local(to_provider.location), SUCCEEDS)
    back = local(saved.location)
    for _ in range(2):
        shown = client.get(back)
        assert shown.status_code == 200 and "Visa ending in 4242" in shown.text
    saved_cards = sa.select(sa.func.count()).select_from(m.PaymentMethod)
    assert session.scalar(saved_cards) == 0
    setup_id = found(SETUP_ID, shown.text)
    assert client.post(back, data={"setup_id": setup_id}).status_code == 400, "no CSRF token"
    assert session.scalar(saved_cards) == 0
    done = client.post(back, data={"csrf_token": csrf_token(shown.text), "setup_id": setup_id})
    assert done.status_code == 303 and session.scalar(saved_cards) == 1


def test_a_card_page_expires(
    app: Flask, client: FlaskClient, bruno_signed_in: m.Customer, on_hold: m.Subscription
) -> None:
    """A card page left open does not wait forever: after an hour it is gone, and a card
    entered on it cannot be saved."""
    page = client.get(edit_path(on_hold))
    start = datetime.now(UTC)
    with time_machine.travel(start, tick=False):
        to_provider = client.post(
            edit_path(on_hold) + "/new-card", data={"csrf_token": csrf_token(page.text)}
        )
    card_page = local(to_provider.location)
    with time_machine.travel(start + timedelta(minutes=59), tick=False):
        assert client.get(card_page).status_code == 200
    with time_machine.travel(start + timedelta(minutes=61), tick=False):
        assert client.get(card_page).status_code == 404
