"""The pages cost the same number of SQL statements for 3 invoices and for 3,000."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

import flask_customer_portal as portal
from flask_customer_portal import models as m

from .helpers import counting

PAGES = ("/portal/", "/portal/billing", "/portal/subscriptions", "/portal/license-keys")


def add_invoices(session: Session, subscription: m.Subscription, count: int, start: int) -> None:
    """Bulk-write ``count`` paid invoices with a payment each (fast, straight SQL)."""
    customer = subscription.customer
    moment = datetime(2020, 1, 1, tzinfo=UTC)
    invoices = [
        {
            "public_id": f"in_bulk{start + i}",
            **customer.scope,
            "customer_id": customer.id,
            "subscription_id": subscription.id,
            "number": f"BULK-{start + i:06d}",
            "status": "paid",
            "currency": "USD",
            "subtotal": 2900,
            "tax": 0,
            "total": 2900,
            "issued_at": moment + timedelta(hours=start + i),
            "paid_at": moment + timedelta(hours=start + i),
            "business_snapshot": {},
            "customer_snapshot": {},
            "created_at": moment,
        }
        for i in range(count)
    ]
    session.execute(sa.insert(m.Invoice), invoices)
    ids = session.scalars(sa.select(m.Invoice.id).where(m.Invoice.number.like("BULK-%"))).all()
    session.execute(
        sa.insert(m.InvoiceLine),
        [
            {
                "invoice_id": i,
                "position": 1,
                "description": "Pro",
                "quantity": 1,
                "unit_amount": 2900,
                "amount": 2900,
            }
            for i in ids[-count:]
        ],
    )
    session.execute(
        sa.insert(m.Payment),
        [
            {
                "public_id": f"py_bulk{i}",
                **customer.scope,
                "customer_id": customer.id,
                **customer.scope,
                "invoice_id": i,
                "amount": 2900,
                "currency": "USD",
                "status": "succeeded",
                "created_at": moment,
                "updated_at": moment,
            }
            for i in ids[-count:]
        ],
    )
    session.execute(
        sa.insert(m.LicenseKey),
        [
            {
                "public_id": f"lk_bulk{start + i}",
                "customer_id": customer.id,
                "key": f"BULK-KEY-{start + i:08d}",
                "product": "CLI",
                "status": "active",
                "activations": 0,
                "created_at": moment,
            }
            for i in range(count // 10 + 1)
        ],
    )
    session.commit()


def statements_per_page(app: Flask, client: FlaskClient) -> dict[str, int]:
    counts = {}
    for page in PAGES:
        with counting(app) as statements:
            assert client.get(page).status_code == 200, page
        counts[page] = len(statements)
    return counts


@pytest.mark.parametrize("many", [3000])
def test_pages_cost_the_same_for_3_and_for_3000_invoices(
    app: Flask,
    client: FlaskClient,
    session: Session,
    signed_in: m.Customer,
    subscription: m.Subscription,
    many: int,
) -> None:
    """Nothing on a page is loaded row by row: more history, same statements."""
    portal.record_failed_renewal(subscription, reason="Your card was declined.")
    add_invoices(session, subscription, 3, start=0)
    few = statements_per_page(app, client)
    add_invoices(session, subscription, many - 3, start=3)
    assert session.scalar(sa.select(sa.func.count()).select_from(m.Invoice)) == many + 1
    assert statements_per_page(app, client) == few
