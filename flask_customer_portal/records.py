"""The merchant's own ids and metadata on the portal's records, and the look-ups by id.

Customers, subscriptions, invoices, payments, products and prices each carry an ``external_id``
(the id the record has in the merchant's system or processor) and
``metadata_`` (the merchant's key-value pairs). An external id is unique in
its business and mode: the same id in test and live mode, or in two
businesses, names two different records. The getters look a record up by its
public id or its external id, always within one business and mode.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any, TypeVar

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from . import validation as v
from .errors import ValidationError
from .models import Business, Customer, Invoice, Payment, Price, Product, Subscription
from .proxies import portal, unit_of_work

#: The records that carry an external id and metadata.
Record = TypeVar("Record", Customer, Subscription, Invoice, Payment, Product, Price)


# -- Look-ups ----------------------------------------------------------------------------


def get_customer(
    business: Business, public_id: str | None = None, *, mode: str, external_id: str | None = None
) -> Customer | None:
    """Return the customer of ``business`` in ``mode`` with this public or external id, or ``None``.

    Give exactly one of ``public_id`` (``cus_...``) and ``external_id``.
    """
    return _get(Customer, business, public_id, mode=mode, external_id=external_id)


def find_customer(business: Business, email: str, *, mode: str) -> Customer | None:
    """Return the customer of ``business`` in ``mode`` with this email, in any case, or ``None``.

    An address that is not valid finds no one.
    """
    try:
        address = v.email("email", email)
    except ValidationError:
        return None
    return portal.session.scalar(
        select(Customer).filter_by(business_id=business.id, mode=mode, email=address)
    )


def get_subscription(
    business: Business, public_id: str | None = None, *, mode: str, external_id: str | None = None
) -> Subscription | None:
    """Return the subscription of ``business`` in ``mode`` with this public or external id.

    Give exactly one of ``public_id`` (``sub_...``) and ``external_id``; ``None`` when absent.
    """
    return _get(Subscription, business, public_id, mode=mode, external_id=external_id)


def get_invoice(
    business: Business, public_id: str | None = None, *, mode: str, external_id: str | None = None
) -> Invoice | None:
    """Return the invoice of ``business`` in ``mode`` with this public or external id.

    Give exactly one of ``public_id`` (``in_...``) and ``external_id``; ``None`` when absent.
    """
    return _get(Invoice, business, public_id, mode=mode, external_id=external_id)


def get_payment(
    business: Business, public_id: str | None = None, *, mode: str, external_id: str | None = None
) -> Payment | None:
    """Return the payment of ``business`` in ``mode`` with this public or external id.

    Give exactly one of ``public_id`` (``py_...``) and ``external_id``; ``None`` when absent.
    """
    return _get(Payment, business, public_id, mode=mode, external_id=external_id)


def get_product(
    business: Business, public_id: str | None = None, *, mode: str, external_id: str | None = None
) -> Product | None:
    """Return the product of ``business`` in ``mode`` with this public or external id.

    Give exactly one of ``public_id`` (``prod_...``) and ``external_id``; ``None`` when absent.
    """
    return _get(Product, business, public_id, mode=mode, external_id=external_id)


def get_price(
    business: Business, public_id: str | None = None, *, mode: str, external_id: str | None = None
) -> Price | None:
    """Return the price of ``business`` in ``mode`` with this public or external id.

    Give exactly one of ``public_id`` (``price_...``) and ``external_id``; ``None`` when absent.
    """
    return _get(Price, business, public_id, mode=mode, external_id=external_id)


def _get(
    model: type[Record],
    business: Business,
    public_id: str | None,
    *,
    mode: str,
    external_id: str | None,
) -> Record | None:
    if (public_id is None) == (external_id is None):
        raise ValidationError(
            "public_id", "one_id_required", "give exactly one of public_id and external_id"
        )
    key: dict[str, Any]
    if public_id is None:
        key = {"external_id": v.external_id("external_id", external_id, required=True)}
    elif isinstance(public_id, str):
        key = {"public_id": public_id}
    else:
        raise ValidationError("public_id", "not_text", "must be text")
    return portal.session.scalar(select(model).filter_by(business_id=business.id, mode=mode, **key))


# -- The signed-in customer's own records (Z1) ---------------------------------------------


def subscription_of(customer: Customer, public_id: str) -> Subscription | None:
    """Return ``customer``'s subscription with this public id, or ``None`` (Z1)."""
    return portal.session.scalar(
        select(Subscription).filter_by(customer_id=customer.id, public_id=public_id)
    )


def payment_of(customer: Customer, public_id: str) -> Payment | None:
    """Return ``customer``'s payment with this public id, or ``None`` (Z1)."""
    return portal.session.scalar(
        select(Payment).filter_by(customer_id=customer.id, public_id=public_id)
    )


def _taken(model: type[Record], scope: Mapping[str, Any], external_id: str) -> bool:
    query = select(model.id).filter_by(**scope, external_id=external_id)
    return portal.session.scalar(query) is not None


# -- Writing -----------------------------------------------------------------------------


@contextmanager
def claiming(
    model: type[Record], scope: Mapping[str, Any], external_id: str | None
) -> Iterator[None]:
    """Turn the unique violation of ``external_id`` in the block into a clear refusal.

    Wrap a :func:`~.proxies.unit_of_work` that writes a record with this
    external id in ``scope`` (its business and mode): the constraint decides,
    so of two writers racing for one id exactly one wins, and the other gets
    :class:`ValidationError` (``external_id``, ``external_id_taken``) with
    nothing written. Any other integrity error goes on as it was.
    """
    try:
        yield
    except IntegrityError:
        if external_id is not None and _taken(model, scope, external_id):
            raise _taken_error(model, external_id) from None
        raise


def _taken_error(model: type[Record], external_id: str) -> ValidationError:
    kind = model.__name__.lower()
    return ValidationError(
        "external_id",
        "external_id_taken",
        f"is the external id of another {kind} of this business and mode",
        external_id=external_id,
    )


def set_external_id(record: Record, external_id: str | None) -> Record:
    """Give ``record`` (a customer, subscription, invoice, payment, product or price) this
    external id; commit.

    ``None`` (or empty text) clears it. An id another record of the same kind,
    business and mode has is refused (``external_id_taken``); nothing is written.
    """
    value = v.external_id("external_id", external_id)
    model = type(record)
    with claiming(model, _scope(record), value), unit_of_work():
        record.external_id = value
    return record


def update_metadata(record: Record, values: Mapping[str, str | None]) -> Record:
    """Merge ``values`` into ``record``'s metadata; a value of ``None`` removes its key. Commit.

    Keys not given keep their values, as in Stripe. The row is locked while
    merging, so two updates at once both land. At most 50 keys (``too_many_keys``).
    """
    changes = v.metadata("metadata", values)
    with unit_of_work() as session:
        session.refresh(record, ["metadata_"], with_for_update=True)
        record.metadata_ = v.merged_metadata("metadata", record.metadata_ or {}, changes)
    return record


def merchant_fields(
    external_id: str | None, metadata: Mapping[str, str | None] | None
) -> dict[str, Any]:
    """Check a new record's ``external_id`` and ``metadata``; return them as its column values.

    For the writers of the data API: pass the result to the model, and write
    inside :func:`claiming` its ``external_id``.
    """
    pairs = {} if metadata is None else v.metadata("metadata", metadata)
    return {
        "external_id": v.external_id("external_id", external_id),
        "metadata_": v.merged_metadata("metadata", {}, pairs),
    }


def _scope(record: Customer | Subscription | Invoice | Payment | Product | Price) -> dict[str, Any]:
    return {"business_id": record.business_id, "mode": record.mode}
