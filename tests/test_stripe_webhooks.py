"""Stripe's webhooks keep the portal true: signed, kept once, applied through the data API.

Against localstripe: the events it emits reach the portal over real HTTP; the
others are built around the real objects it returns and signed as Stripe signs.
"""

from __future__ import annotations

import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
import stripe
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

import flask_customer_portal as portal
from flask_customer_portal import models as m
from flask_customer_portal import signals
from flask_customer_portal.formatting import date

from .helpers import count, record_signals, signalled
from .stripe_events import (
    add_card,
    client_of,
    event,
    renewal_invoice,
    serve,
    signed,
    stripe_plan,
    wait_for,
)
from .stripe_server import SECRET_KEY, StripeServer

URL = "/portal/webhooks/stripe/acme"


@pytest.fixture
def app(database_url: str, app_factory: Callable[..., Flask], stripe_server: StripeServer) -> Flask:
    return app_factory(database_url, **stripe_server.settings())


@pytest.fixture
def stripe_client(stripe_server: StripeServer) -> stripe.StripeClient:
    return client_of(stripe_server)


@pytest.fixture
def stripe_customer(stripe_client: stripe.StripeClient, customer: m.Customer) -> str:
    """Ana at Stripe, with a card that pays (no event told the portal of it), linked to her
    portal record by its id."""
    created = stripe_client.v1.customers.create(params={"email": customer.email, "name": "Ana"})
    add_card(stripe_client, created.id)
    portal.set_external_id(customer, created.id)
    return created.id


def portal_subscription(session: Session, external_id: str) -> m.Subscription | None:
    session.expire_all()
    business = portal.get_business("acme")
    assert business is not None
    return portal.get_subscription(business, mode="test", external_id=external_id)


def post(client: FlaskClient, body: dict[str, Any], **options: Any) -> Any:
    payload, headers = signed(body, **options)
    return client.post(URL, data=payload, headers=headers)


def events(session: Session) -> list[tuple[str, str]]:
    session.expire_all()
    return list(session.execute(sa.select(m.WebhookEvent.event_id, m.WebhookEvent.type)).all())


@pytest.fixture
def live_subscription(
    app: Flask,
    session: Session,
    stripe_server: StripeServer,
    stripe_client: stripe.StripeClient,
    stripe_customer: str,
) -> Any:
    """A subscription started in Stripe, arrived in the portal by localstripe's webhook."""
    with serve(app, stripe_server, "acme"):
        created = stripe_client.v1.subscriptions.create(
            params={"customer": stripe_customer, "items": [{"plan": stripe_plan(stripe_client)}]}
        )
        wait_for(lambda: portal_subscription(session, created.id))
    return created


def test_a_subscription_started_in_stripe_appears_in_the_portal(
    session: Session, live_subscription: Any, client: FlaskClient, signed_in: m.Customer
) -> None:
    """customer.subscription.created (from localstripe) starts it, with Stripe's terms."""
    subscription = portal_subscription(session, live_subscription.id)
    assert subscription is not None
    assert (subscription.product, subscription.plan, subscription.price_amount) == (
        "Acme Cloud",
        "Pro",
        2900,
    )
    assert subscription.status == "active"
    assert subscription.current_period_end == datetime.fromtimestamp(
        live_subscription.current_period_end, UTC
    )
    page = client.get("/portal/subscriptions").text
    assert "Acme Cloud" in page


def test_a_renewal_paid_in_stripe_moves_the_renewal_date(
    app: Flask,
    session: Session,
    stripe_server: StripeServer,
    stripe_client: stripe.StripeClient,
    stripe_customer: str,
    live_subscription: Any,
    client: FlaskClient,
    signed_in: m.Customer,
) -> None:
    """invoice.payment_succeeded (from localstripe) records the renewal: "Renews on" moves."""
    subscription = portal_subscription(session, live_subscription.id)
    assert subscription is not None
    old_end = subscription.current_period_end
    new_end = old_end + timedelta(days=31)
    with serve(app, stripe_server, "acme"):
        renewal = renewal_invoice(stripe_client, stripe_customer, live_subscription.id, new_end)
        stripe_client.v1.invoices.pay(renewal)
        renewed = wait_for(
            lambda: (
                (s := portal_subscription(session, live_subscription.id))
                and s.current_period_end == new_end
                and s
            )
        )
    assert renewed.next_billing_at == new_end
    invoice = session.scalar(sa.select(m.Invoice).filter_by(subscription_id=renewed.id))
    assert invoice is not None and invoice.status == "paid"
    page = client.get("/portal/subscriptions").text
    assert date(new_end, "en") in page
    assert date(old_end, "en") not in page


def test_a_subscription_cancelled_in_stripe_shows_as_cancelled(
    app: Flask,
    session: Session,
    stripe_server: StripeServer,
    stripe_client: stripe.StripeClient,
    live_subscription: Any,
    client: FlaskClient,
    signed_in: m.Customer,
) -> None:
    """customer.subscription.deleted (from localstripe) ends it in the portal, whatever ways
    of cancelling the business offers its customers."""
    with serve(app, stripe_server, "acme"):
        stripe_client.v1.subscriptions.cancel(live_subscription.id)
        ended = wait_for(
            lambda: (
                (s := portal_subscription(session, live_subscription.id))
                and s.status == "cancelled"
                and s
            )
        )
    assert ended.ended_at is not None and ended.next_billing_at is None
    page = client.get("/portal/subscriptions").text
    assert "Cancelled" in page


def test_a_renewal_that_fails_in_stripe_puts_the_subscription_on_hold(
    app: Flask,
    session: Session,
    stripe_server: StripeServer,
    stripe_client: stripe.StripeClient,
    stripe_customer: str,
    live_subscription: Any,
) -> None:
    """invoice.payment_failed (from localstripe: the bank's check failed) records the failed
    renewal once: on hold, an open invoice for the next period; Stripe's next attempt at the
    same invoice adds nothing."""
    add_card(stripe_client, stripe_customer, "4000002760003184")
    subscription = portal_subscription(session, live_subscription.id)
    assert subscription is not None
    new_end = subscription.current_period_end + timedelta(days=31)
    with serve(app, stripe_server, "acme"):
        renewal = renewal_invoice(stripe_client, stripe_customer, live_subscription.id, new_end)
        intent = stripe_client.v1.invoices.pay(renewal).payment_intent
        fail_authentication(stripe_server, stripe_client.v1.payment_intents.retrieve(intent))
        held = wait_for(
            lambda: (
                (s := portal_subscription(session, live_subscription.id))
                and s.status == "on_hold"
                and s
            )
        )
    owed = session.scalars(sa.select(m.Invoice).filter_by(subscription_id=held.id)).all()
    assert [(invoice.status, invoice.total) for invoice in owed] == [("open", 5800)]
    again = event("invoice.payment_failed", stripe_client.v1.invoices.retrieve(renewal).to_dict())
    assert post(client_for(app), again).status_code == 200
    assert session.scalar(sa.select(sa.func.count()).select_from(m.Invoice)) == 1


def fail_authentication(server: StripeServer, intent: Any) -> None:
    """Fail the bank's check (3-D Secure) of a waiting payment, as localstripe's page does."""
    assert intent.status == "requires_action"
    form = urllib.parse.urlencode({"client_secret": intent.client_secret, "success": "false"})
    url = f"{server.url}/v1/payment_intents/{intent.id}/_authenticate"
    request = urllib.request.Request(url, form.encode(), {"Authorization": f"Bearer {SECRET_KEY}"})
    with urllib.request.urlopen(request, timeout=10) as answer:
        assert answer.status == 200


def client_for(app: Flask) -> FlaskClient:
    return app.test_client()


def state_of(session: Session) -> list[tuple[Any, ...]]:
    """What the portal shows of every subscription and invoice, and the events it kept."""
    session.expire_all()
    subscriptions = session.execute(
        sa.select(
            m.Subscription.status,
            m.Subscription.current_period_end,
            m.Subscription.cancel_at_period_end,
        )
    ).all()
    invoices = session.execute(sa.select(m.Invoice.status, m.Invoice.total)).all()
    return [*subscriptions, *invoices, *events(session)]


def test_a_forged_signature_is_refused_and_changes_nothing(
    session: Session, client: FlaskClient, subscription: m.Subscription
) -> None:
    """O1 (the signing secret from configuration): an event signed with another secret, or
    not signed, is refused with 400 and a JSON error; nothing is kept or changed."""
    portal.set_external_id(subscription, "sub_forged")
    body = event("customer.subscription.deleted", {"id": "sub_forged", "status": "canceled"})
    before = state_of(session)
    forged = post(client, body, secret="whsec_guessed")
    assert forged.status_code == 400
    assert forged.json["code"] == 400 and "Stripe-Signature" in forged.json["message"]
    unsigned = client.post(URL, json=body)
    assert unsigned.status_code == 400
    assert state_of(session) == before


def test_a_stale_timestamp_is_refused(
    session: Session, client: FlaskClient, subscription: m.Subscription
) -> None:
    """A genuine signature more than 300 seconds old (a captured delivery played again) is
    refused with 400; one inside Stripe's tolerance is taken."""
    portal.set_external_id(subscription, "sub_stale")
    body = event("customer.subscription.deleted", {"id": "sub_stale", "status": "canceled"})
    before = state_of(session)
    stale = post(client, body, at=int(time.time()) - 301)
    assert stale.status_code == 400 and "timestamp" in stale.json["message"].lower()
    assert state_of(session) == before
    assert post(client, body, at=int(time.time()) - 200).status_code == 200
    session.refresh(subscription)
    assert subscription.status == "cancelled"


def test_a_replayed_event_answers_200_and_changes_nothing(
    session: Session, client: FlaskClient, subscription: m.Subscription
) -> None:
    """D1 (one row per provider and event id): the same event delivered again is recognised
    and applied no second time."""
    portal.set_external_id(subscription, "sub_replayed")
    body = event("invoice.payment_failed", failed_invoice("sub_replayed", subscription))
    first = post(client, body)
    assert first.status_code == 200 and first.json["status"] == "applied"
    after = state_of(session)
    body["data"]["object"]["id"] = "in_another"  # the same event id: never looked at again
    again = post(client, body)
    assert again.status_code == 200 and again.json["status"] == "duplicate"
    assert state_of(session) == after


def failed_invoice(stripe_subscription: str, subscription: m.Subscription) -> dict[str, Any]:
    """A Stripe invoice of the subscription's next period, whose payment failed."""
    starts = int(subscription.current_period_end.timestamp())
    return {
        "id": "in_" + stripe_subscription,
        "object": "invoice",
        "subscription": stripe_subscription,
        "amount_due": 2900,
        "created": starts,
        "lines": {"data": [{"period": {"start": starts, "end": starts + 31 * 86400}}]},
    }


def test_an_unknown_event_type_is_kept_and_ignored(
    session: Session, client: FlaskClient, subscription: m.Subscription
) -> None:
    """An event type the portal does not apply answers 200 and is kept, so it is never
    looked at again; one about records the portal does not have is ignored the same way."""
    before = state_of(session)
    unknown = post(client, event("customer.discount.created", {"id": "di_1"}))
    assert unknown.json["status"] == "ignored"
    stranger = post(client, event("customer.subscription.deleted", {"id": "sub_nobody"}))
    assert stranger.json["status"] == "ignored"
    assert len(events(session)) == 2
    assert state_of(session)[: len(before)] == before


def test_an_unknown_business_is_404(client: FlaskClient, business: m.Business) -> None:
    """Each business has its own endpoint; any other path under it is not found."""
    payload, headers = signed(event("invoice.paid", {"id": "in_1"}))
    answer = client.post("/portal/webhooks/stripe/nobody", data=payload, headers=headers)
    assert answer.status_code == 404 and answer.json["code"] == 404


def test_a_subscription_updated_in_stripe_follows_its_status_and_cancellation(
    session: Session,
    client: FlaskClient,
    stripe_client: stripe.StripeClient,
    live_subscription: Any,
) -> None:
    """customer.subscription.updated (built around localstripe's object): set to cancel at the
    period's end, taken back, past due (on hold), active again, as in the status table."""
    stripe_id = live_subscription.id

    def updated(**changes: Any) -> m.Subscription:
        current = stripe_client.v1.subscriptions.retrieve(stripe_id).to_dict()
        answer = post(client, event("customer.subscription.updated", {**current, **changes}))
        assert answer.status_code == 200, answer.json
        found = portal_subscription(session, stripe_id)
        assert found is not None
        return found

    stripe_client.v1.subscriptions.update(stripe_id, params={"cancel_at_period_end": True})
    ending = updated()
    assert (ending.status, ending.cancel_at_period_end) == ("active", True)
    assert ending.next_billing_at is None
    stripe_client.v1.subscriptions.update(stripe_id, params={"cancel_at_period_end": False})
    assert updated().cancel_at_period_end is False
    held = updated(status="past_due")
    assert (held.status, held.next_billing_at) == ("on_hold", None)
    assert updated(status="unpaid").status == "on_hold"
    back = updated(status="active")
    assert (back.status, back.next_billing_at) == ("active", back.current_period_end)


def test_a_failed_renewal_paid_later_in_stripe_reactivates(
    session: Session, client: FlaskClient, subscription: m.Subscription
) -> None:
    """invoice.paid after invoice.payment_failed of the same invoice pays the open invoice
    the failure left, and the subscription is active again; a refund of the charge in
    Stripe (charge.refunded) is recorded once, however often it is delivered."""
    portal.set_external_id(subscription, "sub_retried")
    invoice = failed_invoice("sub_retried", subscription)
    assert post(client, event("invoice.payment_failed", invoice)).json["status"] == "applied"
    paid = {**invoice, "status": "paid", "amount_paid": 2900, "charge": "ch_retried"}
    assert post(client, event("invoice.paid", paid)).json["status"] == "applied"
    session.refresh(subscription)
    assert subscription.status == "active"
    assert subscription.next_billing_at == subscription.current_period_end
    statuses = session.scalars(sa.select(m.Invoice.status)).all()
    assert statuses == ["paid"]
    charge = {"id": "ch_retried", "object": "charge", "invoice": invoice["id"]}
    refunded = event("charge.refunded", {**charge, "amount_refunded": 1000})
    assert post(client, refunded).json["status"] == "applied"
    assert (
        post(client, event("charge.refunded", {**charge, "amount_refunded": 1000})).json["status"]
        == "ignored"
    )
    assert (
        post(client, event("charge.refunded", {**charge, "amount_refunded": 2900})).json["status"]
        == "applied"
    )
    assert session.scalars(sa.select(m.Refund.amount).order_by(m.Refund.id)).all() == [1000, 1900]


@pytest.mark.postgresql_only
def test_one_event_delivered_by_several_threads_at_once_is_applied_once(
    app: Flask, session: Session, subscription: m.Subscription
) -> None:
    """D1 on PostgreSQL: eight deliveries of one event at once renew the subscription once;
    every one of them answers 200 (one applied, the others duplicates)."""
    portal.set_external_id(subscription, "sub_raced")
    starts = int(subscription.current_period_end.timestamp())
    paid = {
        "id": "in_raced",
        "object": "invoice",
        "subscription": "sub_raced",
        "amount_paid": 2900,
        "lines": {"data": [{"period": {"start": starts, "end": starts + 31 * 86400}}]},
    }
    payload, headers = signed(event("invoice.paid", paid))
    barrier = threading.Barrier(8)
    answers: list[tuple[int, str]] = []

    def deliver() -> None:
        client = app.test_client()
        barrier.wait()
        answer = client.post(URL, data=payload, headers=headers)
        answers.append((answer.status_code, answer.json["status"]))

    threads = [threading.Thread(target=deliver) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(answers) == [(200, "applied")] + [(200, "duplicate")] * 7
    session.refresh(subscription)
    assert subscription.current_period_end == datetime.fromtimestamp(starts + 31 * 86400, UTC)
    assert session.scalar(sa.select(sa.func.count()).select_from(m.Invoice)) == 1


def subscriptions_page(client: FlaskClient) -> str:
    return client.get("/portal/subscriptions").text


def test_cards_attached_and_detached_in_stripe_show_on_the_subscriptions_page(
    session: Session,
    client: FlaskClient,
    stripe_client: stripe.StripeClient,
    stripe_customer: str,
    live_subscription: Any,
    signed_in: m.Customer,
) -> None:
    """payment_method.attached (built around localstripe's card) saves the card: the one
    Stripe's customer pays invoices with becomes the default and the subscription's card;
    another is kept beside it. payment_method.detached (no customer on it) forgets the card:
    the subscription moves to the other one. P1: only brand, last four and expiry are kept."""
    assert "Payment method: none yet." in subscriptions_page(client)
    default = stripe_client.v1.customers.retrieve(stripe_customer).invoice_settings
    paying = default.default_payment_method
    other = add_card(stripe_client, stripe_customer, "4000056655665556", default=False)

    def deliver(kind: str, method: str) -> str:
        data = stripe_client.v1.payment_methods.retrieve(method).to_dict()
        answer = post(client, event(kind, data))
        assert answer.status_code == 200, answer.json
        return str(answer.json["status"])

    assert deliver("payment_method.attached", paying) == "applied"
    assert deliver("payment_method.attached", other) == "applied"
    page = subscriptions_page(client)
    assert "Payment method: Visa ending in 4242" in page and "12/2034" in page
    cards = portal.list_payment_methods(signed_in)
    assert [(card.provider_token, card.last4, card.is_default) for card in cards] == [
        (paying, "4242", True),
        (other, "5556", False),
    ]

    stripe_client.v1.payment_methods.detach(paying)
    assert deliver("payment_method.detached", paying) == "applied"
    session.expire_all()
    assert [card.last4 for card in portal.list_payment_methods(signed_in)] == ["5556"]
    page = subscriptions_page(client)
    assert "ending in 4242" not in page and "Payment method: Visa ending in 5556" in page
    # Detached again (or a card the portal never saved): nothing to forget.
    assert deliver("payment_method.detached", paying) == "ignored"


def test_a_card_of_a_customer_the_portal_does_not_know_is_ignored(
    session: Session, client: FlaskClient, stripe_client: stripe.StripeClient, business: m.Business
) -> None:
    """payment_method.attached for a Stripe customer linked to no portal customer saves
    nothing (Z1: a card never lands on another customer)."""
    stranger = stripe_client.v1.customers.create(params={"email": "zoe@example.com"})
    method = add_card(stripe_client, stranger.id)
    data = stripe_client.v1.payment_methods.retrieve(method).to_dict()
    assert post(client, event("payment_method.attached", data)).json["status"] == "ignored"
    assert count(session, m.PaymentMethod) == 0


def test_a_plan_and_quantity_changed_in_stripe_show_on_the_subscriptions_page(
    app: Flask,
    session: Session,
    client: FlaskClient,
    stripe_client: stripe.StripeClient,
    live_subscription: Any,
    signed_in: m.Customer,
) -> None:
    """customer.subscription.updated (built around localstripe's subscription after the
    change) moves the portal's subscription to the new product, plan, price, interval and
    quantity; a later quantity change alone changes only the quantity. Each is signalled."""
    stripe_id = live_subscription.id
    bigger = stripe_plan(
        stripe_client, amount=4900, interval="year", nickname="Business", product="Acme Cloud Plus"
    )
    item = live_subscription["items"]["data"][0]["id"]

    def updated(**item_changes: Any) -> m.Subscription:
        stripe_client.v1.subscriptions.update(
            stripe_id, params={"items": [{"id": item, **item_changes}]}
        )
        current = stripe_client.v1.subscriptions.retrieve(stripe_id).to_dict()
        answer = post(client, event("customer.subscription.updated", current))
        assert answer.status_code == 200, answer.json
        found = portal_subscription(session, stripe_id)
        assert found is not None
        return found

    with record_signals(app, {"changed": signals.subscription_changed}) as sent:
        moved = updated(plan=bigger, quantity=3)
    assert (moved.product, moved.plan, moved.price_amount, moved.quantity) == (
        "Acme Cloud Plus",
        "Business",
        4900,
        3,
    )
    assert (moved.interval, moved.interval_count, moved.status) == ("year", 1, "active")
    [change] = signalled(sent, "changed")
    assert change["changes"]["quantity"] == (1, 3) and change["changes"]["price"] == (2900, 4900)
    page = subscriptions_page(client)
    assert "Acme Cloud Plus" in page and "Business" in page and "3 × $49.00" in page

    assert updated(plan=bigger, quantity=1).quantity == 1
    page = subscriptions_page(client)
    assert "3 × $49.00" not in page and "$49.00 every year" in page
