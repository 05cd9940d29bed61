"""The subscriptions page, and cancelling: at the end of the period, undo, now."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
import time_machine
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

import flask_customer_portal as portal
from flask_customer_portal import emails, signals
from flask_customer_portal import models as m
from flask_customer_portal.cancellation import end_due_cancellations

from .conftest import csrf_token, local_mail_app, sign_in_with_link
from .helpers import Received, counting, outbox_kinds, record_signals

PAGE = "/portal/subscriptions"

app = local_mail_app  # mail stays in memory, so tests read what was sent


@pytest.fixture
def received(app: Flask) -> Iterator[Received]:
    """Every cancellation signal the app sends, as (name, keyword arguments by public id)."""
    # The request's objects live in its own session: they are compared by public id.
    named = {"cancelled": signals.subscription_cancelled, "undone": signals.cancellation_undone}
    with record_signals(app, named) as seen:
        yield seen


def cancel_url(subscription: m.Subscription) -> str:
    return f"/portal/subscriptions/{subscription.public_id}/cancel"


def undo_url(subscription: m.Subscription) -> str:
    return f"/portal/subscriptions/{subscription.public_id}/undo-cancel"


def post_cancel(client: FlaskClient, subscription: m.Subscription, when: str) -> Any:
    page = client.get(cancel_url(subscription))
    return client.post(
        cancel_url(subscription), data={"csrf_token": csrf_token(page.text), "when": when}
    )


def post_undo(client: FlaskClient, subscription: m.Subscription) -> Any:
    page = client.get(PAGE)
    return client.post(undo_url(subscription), data={"csrf_token": csrf_token(page.text)})


def sent_text() -> str:
    """Send what is queued; return the newest message's text."""
    emails.send_queued()
    return str(portal.local_messages()[0]["text"])


def row_state(session: Session, subscription: m.Subscription) -> tuple[Any, ...]:
    session.refresh(subscription)
    return (
        subscription.status,
        subscription.cancel_at_period_end,
        subscription.cancelled_at,
        subscription.ended_at,
        subscription.next_billing_at,
    )


def test_cancel_at_period_end_then_undo(
    client: FlaskClient,
    session: Session,
    signed_in: m.Customer,
    subscription: m.Subscription,
    received: Received,
) -> None:
    """P2, C1: both steps are CSRF-protected POSTs; the plan stays active until its end."""
    listing = client.get(PAGE)
    assert "Acme Cloud" in listing.text and "$29.00" in listing.text
    assert "Renews on" in listing.text and "Cancel subscription" in listing.text
    page = client.get(cancel_url(subscription))
    assert 'value="period_end" checked' in page.text and 'value="now"' in page.text
    assert "you keep access until" in page.text and "no refund" in page.text

    response = post_cancel(client, subscription, "period_end")
    assert response.status_code == 303 and response.location.endswith(PAGE)
    status, scheduled, cancelled_at, ended_at, next_billing = row_state(session, subscription)
    assert (status, scheduled, ended_at, next_billing) == ("active", True, None, None)
    assert cancelled_at is not None
    listing = client.get(PAGE)
    assert "Cancels on" in listing.text and "You can undo this until then" in listing.text
    assert outbox_kinds(session) == ["subscription_cancelled"]
    text = sent_text()
    assert "It ends on" in text and "you won't be charged again" in text
    ids = {"customer": signed_in.public_id, "subscription": subscription.public_id}
    assert received == [
        ("cancelled", ids | {"at_period_end": True, "reason": None, "comment": None})
    ]

    response = post_undo(client, subscription)
    assert response.status_code == 303
    status, scheduled, cancelled_at, ended_at, next_billing = row_state(session, subscription)
    assert (status, scheduled, cancelled_at, ended_at) == ("active", False, None, None)
    assert next_billing == subscription.current_period_end
    listing = client.get(PAGE)
    assert "Cancels on" not in listing.text and "will continue" in listing.text
    assert outbox_kinds(session) == ["subscription_cancelled", "cancellation_undone"]
    assert "subscription continues" in sent_text()
    assert received[1:] == [("undone", ids)]


def test_cancel_now_ends_it_and_moves_it_to_the_past(
    client: FlaskClient,
    session: Session,
    signed_in: m.Customer,
    subscription: m.Subscription,
    received: Received,
) -> None:
    """P2: one conditional transition to cancelled; the mail says no refund."""
    response = post_cancel(client, subscription, "now")
    assert response.status_code == 303
    status, scheduled, cancelled_at, ended_at, next_billing = row_state(session, subscription)
    assert (status, scheduled, next_billing) == ("cancelled", False, None)
    assert ended_at is not None and ended_at == cancelled_at
    listing = client.get(PAGE)
    assert "is cancelled" in listing.text and "You have no current subscriptions" in listing.text
    past = listing.text.split('id="cp-past-title"')[1]
    assert "Acme Cloud" in past and "Ended on" in past and "Cancelled" in past
    assert "It ended on" in sent_text() and "not refunded" in portal.local_messages()[0]["text"]
    ids = {"customer": signed_in.public_id, "subscription": subscription.public_id}
    assert received == [
        ("cancelled", ids | {"at_period_end": False, "reason": None, "comment": None})
    ]


@pytest.mark.parametrize(
    ("setting", "offered", "refused"),
    [("cancel_now", "period_end", "now"), ("cancel_at_period_end", "now", "period_end")],
)
def test_only_the_ways_the_business_offers(
    client: FlaskClient,
    session: Session,
    business: m.Business,
    signed_in: m.Customer,
    subscription: m.Subscription,
    setting: str,  # the business turns this way off
    offered: str,
    refused: str,
) -> None:
    """A way the business does not offer is not shown, and posting it is refused."""
    portal.update_business(business, **{setting: False})
    page = client.get(cancel_url(subscription))
    assert 'type="radio"' not in page.text and f'value="{refused}"' not in page.text
    before = row_state(session, subscription)
    response = post_cancel(client, subscription, refused)
    assert response.status_code == 400 and "is not offered" in response.text
    assert row_state(session, subscription) == before and outbox_kinds(session) == []
    assert post_cancel(client, subscription, "sometime").status_code == 400
    assert post_cancel(client, subscription, offered).status_code == 303


def test_someone_elses_subscription_is_not_found(
    client: FlaskClient,
    session: Session,
    business: m.Business,
    signed_in: m.Customer,
) -> None:
    """Z1: another customer's subscription, in this business or another, is a 404 everywhere."""
    other = portal.create_business("Other Shop", public_id="other")
    plans = [
        portal.start_subscription(
            portal.upsert_customer(owner, email), product="X", price=100, currency="USD"
        )
        for owner, email in ((business, "bruno@example.com"), (other, "ana@example.com"))
    ]
    token = csrf_token(client.get(PAGE).text)
    for plan in plans:
        before = row_state(session, plan)
        assert client.get(cancel_url(plan)).status_code == 404
        for url in (cancel_url(plan), undo_url(plan)):
            assert client.post(url, data={"csrf_token": token, "when": "now"}).status_code == 404
        assert row_state(session, plan) == before
    assert outbox_kinds(session) == []


def test_get_changes_nothing_and_a_post_needs_its_csrf_token(
    client: FlaskClient, session: Session, signed_in: m.Customer, subscription: m.Subscription
) -> None:
    """C1: no state change on GET; each POST without a CSRF token gets 400."""
    before = row_state(session, subscription)
    for url in (PAGE, cancel_url(subscription), cancel_url(subscription) + "?when=now"):
        assert client.get(url).status_code == 200
    assert client.post(cancel_url(subscription), data={"when": "now"}).status_code == 400
    assert client.post(undo_url(subscription)).status_code == 400
    assert row_state(session, subscription) == before and outbox_kinds(session) == []


def test_an_ended_subscription_cannot_be_cancelled_again(
    client: FlaskClient, session: Session, signed_in: m.Customer, subscription: m.Subscription
) -> None:
    """P2: a second cancel, or an undo of nothing, says so and changes nothing."""
    token = csrf_token(client.get(cancel_url(subscription)).text)
    assert post_cancel(client, subscription, "now").status_code == 303
    before = row_state(session, subscription)
    page = client.get(cancel_url(subscription))
    assert "nothing to cancel" in page.text and 'name="when"' not in page.text
    response = client.post(cancel_url(subscription), data={"csrf_token": token, "when": "now"})
    assert response.status_code == 400 and "already been cancelled" in response.text
    response = client.post(undo_url(subscription), data={"csrf_token": token})
    assert response.status_code == 400 and "no cancellation to undo" in response.text
    assert row_state(session, subscription) == before
    assert outbox_kinds(session) == ["subscription_cancelled"]


def test_cancelling_a_plan_on_hold_voids_its_dues(
    client: FlaskClient,
    session: Session,
    business: m.Business,
    signed_in: m.Customer,
    subscription: m.Subscription,
) -> None:
    """An on-hold plan ends now (even where only period end is offered); its dues are voided."""
    portal.update_business(business, cancel_now=False)
    invoice = portal.record_failed_renewal(subscription, reason="card declined")
    listing = client.get(PAGE)
    assert "On hold" in listing.text and "$29.00 is due" in listing.text
    page = client.get(cancel_url(subscription))
    assert 'type="radio"' not in page.text and "unpaid invoices ($29.00) are cancelled" in page.text
    assert post_cancel(client, subscription, "period_end").status_code == 400
    assert post_cancel(client, subscription, "now").status_code == 303
    assert row_state(session, subscription)[0] == "cancelled"
    session.refresh(invoice)
    assert invoice.status == "void"
    assert portal.outstanding_dues(subscription)[0] == 0
    assert "unpaid invoices ($29.00) are cancelled" in sent_text()


def test_scheduled_cancellations_end_with_their_period(
    client: FlaskClient,
    session: Session,
    customer: m.Customer,
    signed_in: m.Customer,
    subscription: m.Subscription,
) -> None:
    """P2: the cron ends them at period end; undo is refused once the period is over."""
    other = portal.start_subscription(customer, product="Other", price=500, currency="USD")
    assert post_cancel(client, subscription, "period_end").status_code == 303
    ends = subscription.current_period_end
    with time_machine.travel(ends - timedelta(seconds=1), tick=False):
        assert end_due_cancellations() == 0
    with time_machine.travel(ends + timedelta(seconds=1), tick=False):
        assert sign_in_with_link(client, customer).status_code == 303
        response = post_undo(client, subscription)
        assert response.status_code == 400 and "period has ended" in response.text
        assert end_due_cancellations() == 1
        assert end_due_cancellations() == 0
    status, scheduled, _, ended_at, next_billing = row_state(session, subscription)
    assert (status, scheduled, ended_at, next_billing) == ("cancelled", True, ends, None)
    assert row_state(session, other)[0] == "active"


def test_the_page_costs_the_same_queries_however_long_the_history(
    app: Flask,
    client: FlaskClient,
    signed_in: m.Customer,
    subscription: m.Subscription,
) -> None:
    """The subscriptions page issues a fixed number of SQL statements."""
    portal.record_failed_renewal(subscription, reason="card declined")

    def statements() -> int:
        with counting(app) as seen:
            assert client.get(PAGE).status_code == 200
        return len(seen)

    few = statements()
    for _ in range(30):
        portal.issue_invoice(
            signed_in,
            [{"description": "Extra", "unit_amount": 100}],
            currency="USD",
            subscription=subscription,
        )
    assert statements() == few
