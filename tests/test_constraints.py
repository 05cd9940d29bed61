"""D1: the schema itself refuses bad rows, whatever code writes them.

Each test writes straight to the tables (no data API in the way) and expects
the database to say no.
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import DataError, IntegrityError
from sqlalchemy.orm import Session

from flask_customer_portal import models as m
from flask_customer_portal.db import Base

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
_serial = itertools.count(1)


def insert(session: Session, model: type[Base], **values: Any) -> int:
    row_id = session.execute(sa.insert(model).values(**values).returning(model.id)).scalar_one()
    session.commit()
    return int(row_id)


def refused(session: Session, model: type[Base], **values: Any) -> None:
    with pytest.raises((IntegrityError, DataError)):
        insert(session, model, **values)
    session.rollback()


def business_row(**overrides: Any) -> dict[str, Any]:
    row = {
        "public_id": "biz_" + str(next(_serial)),
        "name": "Acme",
        "default_locale": "en",
        "invoice_prefix": "ACME",
        "invoice_counter_live": 0,
        "invoice_counter_test": 0,
        "created_at": NOW,
    }
    return row | overrides


@pytest.fixture
def ids(session: Session) -> dict[str, int]:
    """One valid row of each parent table."""
    business = insert(session, m.Business, **business_row(public_id="acme"))
    other = insert(session, m.Business, **business_row(public_id="other"))
    customer = insert(session, m.Customer, **customer_row(business, public_id="cus_a"))
    subscription = insert(session, m.Subscription, **subscription_row(customer))
    invoice = insert(session, m.Invoice, **invoice_row(business, customer, number="A-1"))
    payment = insert(session, m.Payment, **payment_row(customer))
    return {
        "business": business,
        "other": other,
        "customer": customer,
        "subscription": subscription,
        "invoice": invoice,
        "payment": payment,
    }


def customer_row(business_id: int, **overrides: Any) -> dict[str, Any]:
    row = {
        "public_id": "cus_" + str(next(_serial)),
        "business_id": business_id,
        "mode": "test",
        "email": "ana@example.com",
        "name": "Ana",
        "created_at": NOW,
        "updated_at": NOW,
    }
    return row | overrides


def customer_scope(customer_id: int) -> dict[str, Any]:
    """The business and mode of a customer's record: its customer's, read in the insert."""
    return {
        column: sa.select(getattr(m.Customer, column))
        .where(m.Customer.id == customer_id)
        .scalar_subquery()
        for column in ("business_id", "mode")
    }


def subscription_row(customer_id: int, **overrides: Any) -> dict[str, Any]:
    row = {
        "public_id": "sub_" + str(next(_serial)),
        "customer_id": customer_id,
        **customer_scope(customer_id),
        "product": "Cloud",
        "plan": "Pro",
        "price_amount": 2900,
        "currency": "USD",
        "interval": "month",
        "interval_count": 1,
        "quantity": 1,
        "status": "active",
        "current_period_start": NOW,
        "current_period_end": NOW + timedelta(days=30),
        "cancel_at_period_end": False,
        "created_at": NOW,
        "updated_at": NOW,
    }
    return row | overrides


def invoice_row(business_id: int, customer_id: int, **overrides: Any) -> dict[str, Any]:
    row = {
        "public_id": "in_" + str(next(_serial)),
        "business_id": business_id,
        "mode": "test",
        "customer_id": customer_id,
        "number": "A-" + str(next(_serial)),
        "status": "open",
        "currency": "USD",
        "subtotal": 1000,
        "tax": 100,
        "total": 1100,
        "issued_at": NOW,
        "business_snapshot": {},
        "customer_snapshot": {},
        "created_at": NOW,
    }
    return row | overrides


def payment_row(customer_id: int, **overrides: Any) -> dict[str, Any]:
    row = {
        "public_id": "py_" + str(next(_serial)),
        "customer_id": customer_id,
        **customer_scope(customer_id),
        "amount": 1100,
        "currency": "USD",
        "status": "succeeded",
        "created_at": NOW,
        "updated_at": NOW,
    }
    return row | overrides


def test_business_constraints(session: Session, ids: dict[str, int]) -> None:
    refused(session, m.Business, **business_row(public_id="acme"))
    refused(session, m.Business, **business_row(name=""))
    refused(session, m.Business, **business_row(brand_color="red"))
    refused(session, m.Business, **business_row(invoice_counter_live=-1))


def test_customer_email_is_unique_per_business_and_mode_whatever_its_case(
    session: Session, ids: dict[str, int]
) -> None:
    business = ids["business"]
    refused(session, m.Customer, **customer_row(business))
    refused(session, m.Customer, **customer_row(business, email="Ana@Example.com"))
    refused(session, m.Customer, **customer_row(business, email="no-at-sign"))
    refused(session, m.Customer, **customer_row(business, mode="prod"))
    refused(session, m.Customer, **customer_row(business, public_id="cus_a"))
    refused(session, m.Customer, **customer_row(9999))
    insert(session, m.Customer, **customer_row(business, mode="live"))
    insert(session, m.Customer, **customer_row(ids["other"]))


@pytest.mark.parametrize(
    "bad",
    [
        {"status": "paused"},
        {"interval": "fortnight"},
        {"interval_count": 0},
        {"quantity": 0},
        {"price_amount": -1},
        {"currency": "usd"},
        {"currency": "US"},
        {"product": ""},
        {"current_period_end": NOW},
    ],
)
def test_subscription_constraints(session: Session, ids: dict[str, int], bad: dict) -> None:
    refused(session, m.Subscription, **subscription_row(ids["customer"], **bad))


def test_invoice_number_is_unique_per_business(session: Session, ids: dict[str, int]) -> None:
    customer, business = ids["customer"], ids["business"]
    refused(session, m.Invoice, **invoice_row(business, customer, number="A-1"))
    other_customer = insert(session, m.Customer, **customer_row(ids["other"]))
    insert(session, m.Invoice, **invoice_row(ids["other"], other_customer, number="A-1"))


@pytest.mark.parametrize(
    "bad",
    [
        {"status": "overdue"},
        {"total": 1000},
        {"subtotal": -100, "total": 0},
        {"tax": -1, "total": 999},
        {"status": "paid"},
        {"currency": "EURO"},
    ],
)
def test_invoice_constraints(session: Session, ids: dict[str, int], bad: dict) -> None:
    refused(session, m.Invoice, **invoice_row(ids["business"], ids["customer"], **bad))


def test_invoice_line_amount_is_quantity_times_unit_amount(
    session: Session, ids: dict[str, int]
) -> None:
    line = {
        "invoice_id": ids["invoice"],
        "position": 1,
        "description": "Pro",
        "quantity": 2,
        "unit_amount": 500,
        "amount": 1000,
    }
    insert(session, m.InvoiceLine, **line)
    refused(session, m.InvoiceLine, **line)
    refused(session, m.InvoiceLine, **(line | {"position": 2, "amount": 999}))
    refused(session, m.InvoiceLine, **(line | {"position": 3, "quantity": 0, "amount": 0}))
    refused(session, m.InvoiceLine, **(line | {"position": 4, "unit_amount": -5, "amount": -10}))
    refused(session, m.InvoiceLine, **(line | {"position": 5, "invoice_id": 9999}))


def test_payment_and_refund_constraints(session: Session, ids: dict[str, int]) -> None:
    customer = ids["customer"]
    refused(session, m.Payment, **payment_row(customer, amount=0))
    refused(session, m.Payment, **payment_row(customer, status="done"))
    insert(session, m.Payment, **payment_row(customer, idempotency_key="k1"))
    refused(session, m.Payment, **payment_row(customer, idempotency_key="k1"))
    refund = {
        "public_id": "re_1",
        "payment_id": ids["payment"],
        "amount": 100,
        "currency": "USD",
        "status": "succeeded",
        "created_at": NOW,
    }
    refused(session, m.Refund, **(refund | {"amount": -100}))
    refused(session, m.Refund, **(refund | {"status": "maybe"}))
    refused(session, m.Refund, **(refund | {"payment_id": 9999}))


def test_payment_method_constraints(session: Session, ids: dict[str, int]) -> None:
    method = {
        "customer_id": ids["customer"],
        "provider_token": "tok_1",
        "brand": "visa",
        "last4": "4242",
        "exp_month": 12,
        "exp_year": 2030,
        "is_default": True,
        "created_at": NOW,
        "public_id": "pm_1",
    }
    insert(session, m.PaymentMethod, **method)
    refused(session, m.PaymentMethod, **(method | {"public_id": "pm_2", "is_default": False}))
    refused(session, m.PaymentMethod, **(method | {"public_id": "pm_3", "provider_token": "t2"}))
    refused(
        session,
        m.PaymentMethod,
        **(
            method
            | {
                "public_id": "pm_4",
                "provider_token": "t3",
                "is_default": False,
                "last4": "4242424242424242",
            }
        ),
    )
    refused(
        session,
        m.PaymentMethod,
        **(
            method
            | {"public_id": "pm_5", "provider_token": "t4", "is_default": False, "exp_month": 13}
        ),
    )
    insert(
        session,
        m.PaymentMethod,
        **(method | {"public_id": "pm_6", "provider_token": "t5", "is_default": False}),
    )


def test_license_key_constraints(session: Session, ids: dict[str, int]) -> None:
    key = {
        "customer_id": ids["customer"],
        "key": "AAAA-BBBB-CCCC",
        "product": "CLI",
        "status": "active",
        "activations": 0,
        "activation_limit": 2,
        "created_at": NOW,
        "public_id": "lk_1",
    }
    insert(session, m.LicenseKey, **key)
    refused(session, m.LicenseKey, **(key | {"public_id": "lk_2"}))
    refused(
        session,
        m.LicenseKey,
        **(
            key
            | {
                "public_id": "lk_3",
                "key": "K3",
            }
        ),
    )
    refused(
        session,
        m.LicenseKey,
        **(key | {"public_id": "lk_4", "key": "K-4-LONGER", "activations": 3}),
    )
    refused(
        session,
        m.LicenseKey,
        **(key | {"public_id": "lk_5", "key": "K-5-LONGER", "status": "stolen"}),
    )
    refused(
        session,
        m.LicenseKey,
        **(key | {"public_id": "lk_6", "key": "K-6-LONGER", "activations": -1}),
    )
    refused(
        session,
        m.LicenseKey,
        **(key | {"public_id": "lk_7", "key": "K-7-LONGER", "activation_limit": 0}),
    )


def test_naive_timestamps_are_refused_and_aware_ones_come_back_in_utc(
    session: Session, ids: dict[str, int]
) -> None:
    with pytest.raises(Exception, match="naive datetime"):
        insert(session, m.Business, **business_row(public_id="naive", created_at=datetime.now()))
    session.rollback()
    brazil = datetime(2026, 11, 25, 9, 0, tzinfo=UTC).astimezone(
        __import__("zoneinfo").ZoneInfo("America/Sao_Paulo")
    )
    row_id = insert(session, m.Business, **business_row(public_id="sp", created_at=brazil))
    stored = session.get(m.Business, row_id)
    assert stored is not None
    assert stored.created_at == datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
    assert stored.created_at.tzinfo is UTC


def test_a_subscription_has_one_payment_in_flight(session: Session, ids: dict[str, int]) -> None:
    """P2: the schema refuses a second attempt in flight on a subscription, inserted or updated.

    Whatever code writes it (the lock in ``payments`` aside): a second pending or
    requires_action row, or a settled row put back in flight, is refused; another
    subscription, a payment of no subscription, or an attempt after the first settled is not.
    """
    customer, subscription = ids["customer"], ids["subscription"]
    pending = {"subscription_id": subscription, "status": "pending"}
    first = insert(session, m.Payment, **payment_row(customer, **pending))
    refused(session, m.Payment, **payment_row(customer, **pending))
    refused(
        session, m.Payment, **payment_row(customer, **(pending | {"status": "requires_action"}))
    )
    settled = insert(
        session, m.Payment, **payment_row(customer, subscription_id=subscription, status="failed")
    )
    with pytest.raises(IntegrityError):
        session.execute(
            sa.update(m.Payment).where(m.Payment.id == settled).values(status="requires_action")
        )
        session.commit()
    session.rollback()

    # Another subscription of the same customer, and the merchant's own payments of no
    # subscription, have attempts of their own.
    other = insert(session, m.Subscription, **subscription_row(customer))
    insert(session, m.Payment, **payment_row(customer, subscription_id=other, status="pending"))
    insert(session, m.Payment, **payment_row(customer, status="pending"))
    insert(session, m.Payment, **payment_row(customer, status="pending"))
    # Once the attempt in flight has settled, the next one may start.
    session.execute(sa.update(m.Payment).where(m.Payment.id == first).values(status="failed"))
    session.commit()
    insert(session, m.Payment, **payment_row(customer, **pending))
    in_flight = sa.select(sa.func.count()).where(
        m.Payment.subscription_id == subscription, m.Payment.status.in_(m.IN_FLIGHT)
    )
    assert session.scalar(in_flight) == 1
