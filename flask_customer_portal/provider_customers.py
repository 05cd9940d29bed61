"""How the payment provider knows a customer: the ``customer_ref`` of every provider call.

A provider that keeps customers of its own (Stripe) implements the optional
method ``customer_id(*, customer_ref, email) -> str`` (found with ``getattr``).
For such a provider the ref is the customer's ``external_id`` when it has one,
else its ``public_id``; the portal asks the method before a card setup or a
charge of a customer without an ``external_id``, and stores the provider's id
there, so every later call passes that id. Any other provider gets the
``public_id``, as it always has.

Who commits: :func:`customer_ref` commits the ``external_id`` it stores.
"""

from __future__ import annotations

from flask import current_app
from sqlalchemy import update
from sqlalchemy.exc import IntegrityError

from .models import Customer
from .proxies import portal, provider_for, update_one


def customer_ref(customer: Customer, *, ensure: bool = False) -> str:
    """Return the ``customer_ref`` the provider knows ``customer`` by.

    :param ensure: ask the provider for its own id of the customer (creating
        the customer there if needed) when it has that optional method, and
        store it as the customer's ``external_id`` if it has none; commit.
    :raises ProviderError: the provider could not be reached.
    """
    known = getattr(provider_for(customer.mode), "customer_id", None)
    if known is None:
        return customer.public_id
    ref = customer.external_id or customer.public_id
    if not ensure or customer.external_id:
        return ref
    found = str(known(customer_ref=ref, email=customer.email))
    if found != ref:
        _store(customer, found)
    return found


def _store(customer: Customer, external_id: str) -> None:
    session = portal.session
    try:
        # Only an empty external_id is filled: the merchant's own id is never replaced.
        stored = update_one(
            update(Customer)
            .where(Customer.id == customer.id, Customer.external_id.is_(None))
            .values(external_id=external_id)
        )
        session.commit()
    except IntegrityError:
        session.rollback()
        current_app.logger.warning(
            "customer %s: the provider's id %s is another customer's external_id; not stored",
            customer.public_id,
            external_id,
        )
        return
    if stored:
        session.refresh(customer)
