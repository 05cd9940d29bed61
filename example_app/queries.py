"""What the staff pages read from the portal's tables, through the store's session."""

from __future__ import annotations

from dataclasses import dataclass

from flask_sqlalchemy.pagination import Pagination
from sqlalchemy import select

from flask_customer_portal.models import Business, Customer, Invoice, LicenseKey, Subscription

from .models import db

PER_PAGE = 50


@dataclass(frozen=True)
class CustomerRecords:
    """A customer's subscriptions, invoices and license keys, newest first."""

    subscriptions: list[Subscription]
    invoices: list[Invoice]
    license_keys: list[LicenseKey]


def customers_page(business: Business, *, mode: str, search: str, page: int) -> Pagination:
    """Return one page of the business's customers in ``mode``, by email.

    :param search: keep only customers whose email contains it (any case).
    """
    query = select(Customer).filter_by(business_id=business.id, mode=mode).order_by(Customer.email)
    if search:
        query = query.where(Customer.email.contains(search.lower(), autoescape=True))
    return db.paginate(query, page=page, per_page=PER_PAGE, error_out=False)


def customer_records(customer: Customer) -> CustomerRecords:
    """Return the billing records staff see on a customer's page."""
    return CustomerRecords(
        subscriptions=list(
            db.session.scalars(
                select(Subscription)
                .filter_by(customer_id=customer.id)
                .order_by(Subscription.created_at.desc(), Subscription.id.desc())
            )
        ),
        invoices=list(
            db.session.scalars(
                select(Invoice)
                .filter_by(customer_id=customer.id)
                .order_by(Invoice.issued_at.desc(), Invoice.id.desc())
            )
        ),
        license_keys=list(
            db.session.scalars(
                select(LicenseKey)
                .filter_by(customer_id=customer.id)
                .order_by(LicenseKey.created_at.desc(), LicenseKey.id.desc())
            )
        ),
    )
