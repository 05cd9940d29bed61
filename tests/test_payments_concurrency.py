"""Concurrent payments on PostgreSQL: ten posts at once still make one charge (P3)."""

from __future__ import annotations

import threading
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from sqlalchemy.orm import Session

import flask_customer_portal as portal
from flask_customer_portal import invoice_payments, payments, signals
from flask_customer_portal import models as m
from flask_customer_portal.errors import ValidationError
from flask_customer_portal.providers import TestProvider

from .conftest import provider_of
from .helpers import PAYMENT_RETURN_URL, SUCCEEDS, add_card, outbox_kinds, put_on_hold

THREADS = 10

pytestmark = pytest.mark.postgresql_only


def post_at_once(app: Flask, subscription_id: int, card_id: int, keys: list[str]) -> list[Any]:
    """Confirm the payment from one thread per key, all released together; return the outcomes.

    Each thread has its own app context, so its own database session, like a
    request on a server.
    """
    barrier = threading.Barrier(len(keys))
    results: list[Any] = [None] * len(keys)

    def post(index: int) -> None:
        with app.app_context():
            session = app.extensions["customer_portal"].session
            subscription = session.get(m.Subscription, subscription_id)
            card = session.get(m.PaymentMethod, card_id)
            barrier.wait()
            try:
                outcome = payments.change_payment_method(
                    subscription, card, idempotency_key=keys[index], return_url=PAYMENT_RETURN_URL
                )
                results[index] = outcome.status
            except Exception as error:  # reported below with the others
                results[index] = error

    threads = [threading.Thread(target=post, args=(i,)) for i in range(len(keys))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return results


@pytest.fixture
def reactivations(app: Flask) -> Any:
    seen: list[str] = []

    def receive(sender: Flask, **kwargs: Any) -> None:
        seen.append(kwargs["subscription"].public_id)

    with signals.subscription_reactivated.connected_to(receive, app):
        yield seen


@pytest.mark.parametrize(
    "keys",
    [
        pytest.param(["same-key"] * THREADS, id="double-clicks"),
        pytest.param([f"tab-{i}" for i in range(THREADS)], id="tabs"),
    ],
)
def test_ten_concurrent_confirmations_charge_once(
    app: Flask,
    session: Session,
    customer: m.Customer,
    subscription: m.Subscription,
    reactivations: list[str],
    keys: list[str],
) -> None:
    """P3, P2: the same key ten times, or ten keys (tabs), at once: one charge, active once."""
    put_on_hold(subscription, renewals=2)
    card = add_card(customer, SUCCEEDS)
    provider: TestProvider = provider_of(app)

    results = post_at_once(app, subscription.id, card.id, keys)

    assert not [r for r in results if isinstance(r, Exception)], results
    assert "succeeded" in results
    assert set(results) <= {"succeeded", "pending", "updated"}
    assert provider.charge_count == 1
    (charge,) = provider.charges.values()
    assert (charge.amount, charge.status) == (5800, "succeeded")
    session.expire_all()
    attempts = session.scalars(
        sa.select(m.Payment.status).filter(
            m.Payment.subscription_id == subscription.id, m.Payment.payment_method_id.is_not(None)
        )
    )
    assert list(attempts) == ["succeeded"]
    assert subscription.status == "active" and subscription.payment_method_id == card.id
    assert reactivations == [subscription.public_id]
    paid = session.scalars(sa.select(m.Invoice).filter_by(status="paid")).all()
    assert [invoice.total for invoice in paid] == [5800]
    assert outbox_kinds(session) == ["payment_succeeded", "subscription_reactivated"]


@pytest.mark.parametrize(
    "keys",
    [
        pytest.param(["same-key"] * THREADS, id="double-clicks"),
        pytest.param([f"tab-{i}" for i in range(THREADS)], id="tabs"),
    ],
)
def test_ten_posts_at_once_pay_a_one_off_invoice_once(
    app: Flask, session: Session, customer: m.Customer, keys: list[str]
) -> None:
    """P2, P3: ten payments of one invoice at once, one key (double clicks) or ten (tabs): one
    charge, one succeeded payment, the invoice paid; the others answer with that outcome, or,
    once it is paid, that it takes no more payments."""
    invoice = portal.issue_invoice(
        customer, [{"description": "Setup", "unit_amount": 4900}], currency="USD"
    )
    card = add_card(customer, SUCCEEDS)
    provider: TestProvider = provider_of(app)
    barrier = threading.Barrier(THREADS)
    results: list[Any] = [None] * THREADS

    def post(index: int) -> None:
        with app.app_context():
            own = app.extensions["customer_portal"].session
            mine, method = own.get(m.Invoice, invoice.id), own.get(m.PaymentMethod, card.id)
            barrier.wait()
            try:
                results[index] = invoice_payments.pay_invoice(
                    mine, method, idempotency_key=keys[index], return_url=PAYMENT_RETURN_URL
                ).status
            except ValidationError as refused:
                results[index] = refused.code

    threads = [threading.Thread(target=post, args=(i,)) for i in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert "succeeded" in results
    assert set(results) <= {"succeeded", "pending", "invoice_closed"}, results
    assert provider.charge_count == 1
    session.expire_all()
    statuses = session.scalars(sa.select(m.Payment.status).filter_by(invoice_id=invoice.id)).all()
    assert statuses == ["succeeded"]
    assert session.get(m.Invoice, invoice.id).status == "paid"  # type: ignore[union-attr]
    assert outbox_kinds(session) == ["payment_succeeded"]
