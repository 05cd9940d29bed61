"""The merchant's own ids and metadata on customers, subscriptions, invoices and payments.

An external id is unique in its business and mode, found by the getters, and a
taken one is refused with nothing written; metadata follows Stripe's limits and
merge rules.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

import flask_customer_portal as portal
from flask_customer_portal import ValidationError
from flask_customer_portal import models as m
from flask_customer_portal.db import Base

from .conftest import open_link
from .helpers import count, run_threads

LINE = {"description": "Acme Cloud Pro", "unit_amount": 2900}
Getter = Callable[..., Any]


def new_subscription(customer: m.Customer, **labels: Any) -> m.Subscription:
    return portal.start_subscription(
        customer, product="Acme Cloud", price=2900, currency="USD", **labels
    )


def new_invoice(customer: m.Customer, **labels: Any) -> m.Invoice:
    return portal.issue_invoice(customer, [LINE], currency="USD", **labels)


def new_payment(customer: m.Customer, **labels: Any) -> m.Payment:
    return portal.record_payment(customer, amount=2900, currency="USD", **labels)


def new_customer(customer: m.Customer, **labels: Any) -> m.Customer:
    # Another customer of the same business and mode as ``customer``.
    return portal.upsert_customer(
        customer.business, "bruno@example.com", mode=customer.mode, **labels
    )


#: Each kind of record: how to write a new one of ``customer``, and its getter.
KINDS: dict[str, tuple[Callable[..., Any], Getter, type[Base]]] = {
    "customer": (new_customer, portal.get_customer, m.Customer),
    "subscription": (new_subscription, portal.get_subscription, m.Subscription),
    "invoice": (new_invoice, portal.get_invoice, m.Invoice),
    "payment": (new_payment, portal.get_payment, m.Payment),
}
kinds = pytest.mark.parametrize("kind", list(KINDS))


@kinds
def test_an_external_id_and_metadata_round_trip_through_the_writer_and_the_getter(
    session: Session, customer: m.Customer, kind: str
) -> None:
    write, get, _ = KINDS[kind]
    record = write(customer, external_id=" ext_42 ", metadata={"plan": "pro", "seats": "3"})
    session.expire_all()
    found = get(customer.business, mode="test", external_id="ext_42")
    assert found is not None and found.id == record.id
    assert found.external_id == "ext_42"
    assert found.metadata_ == {"plan": "pro", "seats": "3"}
    assert get(customer.business, record.public_id, mode="test").id == record.id
    assert get(customer.business, mode="test", external_id="ext_43") is None
    assert get(customer.business, "xyz_000", mode="test") is None


@kinds
def test_a_record_without_labels_has_no_external_id_and_empty_metadata(
    session: Session, customer: m.Customer, kind: str
) -> None:
    write, _, _ = KINDS[kind]
    record = write(customer)
    session.expire_all()
    assert record.external_id is None and record.metadata_ == {}
    # Records without an external id never clash.
    assert write(customer).external_id is None


@kinds
def test_the_same_external_id_in_the_other_mode_or_business_is_another_record(
    session: Session, business: m.Business, kind: str
) -> None:
    """T13, Z1: a getter never returns a record of another business or mode."""
    write, get, _ = KINDS[kind]
    other_business = portal.create_business("Globex", public_id="globex")
    test_record = write(
        portal.upsert_customer(business, "ana@example.com", mode="test"), external_id="x1"
    )
    live_record = write(
        portal.upsert_customer(business, "ana@example.com", mode="live"), external_id="x1"
    )
    other_record = write(
        portal.upsert_customer(other_business, "ana@example.com", mode="test"), external_id="x1"
    )
    assert len({test_record.id, live_record.id, other_record.id}) == 3
    assert get(business, mode="test", external_id="x1").id == test_record.id
    assert get(business, mode="live", external_id="x1").id == live_record.id
    assert get(other_business, mode="test", external_id="x1").id == other_record.id
    # By public id too: the record of another mode or business is not found.
    assert get(business, live_record.public_id, mode="test") is None
    assert get(other_business, test_record.public_id, mode="test") is None
    assert get(business, other_record.public_id, mode="live") is None


@kinds
def test_a_taken_external_id_is_refused_and_nothing_is_written(
    session: Session, customer: m.Customer, kind: str
) -> None:
    """D1: the unique constraint decides; the error names the field."""
    write, _, model = KINDS[kind]
    first = write(customer, external_id="dup")
    # (Customers are matched by external id when upserted: see the upsert tests.)
    other = customer if kind == "customer" else write(customer)
    before = [count(session, table) for table in (model, m.Invoice, m.Payment)]
    if kind != "customer":
        with pytest.raises(ValidationError) as raised:
            write(customer, external_id="dup", metadata={"note": "second"})
        assert (raised.value.field, raised.value.code) == ("external_id", "external_id_taken")
        assert [count(session, table) for table in (model, m.Invoice, m.Payment)] == before
    with pytest.raises(ValidationError) as raised:
        portal.set_external_id(other, " dup ")
    assert (raised.value.field, raised.value.code) == ("external_id", "external_id_taken")
    session.expire_all()
    assert other.external_id is None and first.external_id == "dup"


@kinds
def test_set_external_id_gives_changes_and_clears_it(
    session: Session, customer: m.Customer, kind: str
) -> None:
    write, get, _ = KINDS[kind]
    record = write(customer)
    portal.set_external_id(record, "a1")
    portal.set_external_id(record, "a2")
    session.expire_all()
    assert get(customer.business, mode="test", external_id="a2").id == record.id
    assert get(customer.business, mode="test", external_id="a1") is None
    portal.set_external_id(record, None)
    session.expire_all()
    assert record.external_id is None
    # The id it gave up is free for another record.
    assert write(customer, external_id="a2").external_id == "a2"


@kinds
def test_update_metadata_merges_and_none_removes_a_key(
    session: Session, customer: m.Customer, kind: str
) -> None:
    write, _, _ = KINDS[kind]
    record = write(customer, metadata={"plan": "pro", "seats": "3"})
    portal.update_metadata(record, {"seats": "5", "crm": "hubspot-77", "plan": None})
    session.expire_all()
    assert record.metadata_ == {"seats": "5", "crm": "hubspot-77"}
    portal.update_metadata(record, {"gone": None})
    session.expire_all()
    assert record.metadata_ == {"seats": "5", "crm": "hubspot-77"}


def test_a_renewal_s_invoice_takes_an_external_id_and_metadata(
    session: Session, subscription: m.Subscription
) -> None:
    business = subscription.customer.business
    paid = portal.record_renewal(
        subscription, invoice_external_id="in_1", invoice_metadata={"source": "stripe"}
    )
    failed = portal.record_failed_renewal(
        subscription, reason="card_declined", invoice_external_id="in_2"
    )
    session.expire_all()
    assert portal.get_invoice(business, mode="test", external_id="in_1").id == paid.id
    assert paid.metadata_ == {"source": "stripe"} and paid.status == "paid"
    assert portal.get_invoice(business, mode="test", external_id="in_2").id == failed.id
    assert failed.metadata_ == {}


@pytest.mark.parametrize("failed", [False, True])
def test_a_renewal_with_a_taken_invoice_id_writes_nothing(
    session: Session, subscription: m.Subscription, failed: bool
) -> None:
    """D3: the period, the invoice and the payment stay as they were."""
    new_invoice(subscription.customer, external_id="in_1")
    period_end, status = subscription.current_period_end, subscription.status
    before = count(session, m.Invoice), count(session, m.Payment)
    with pytest.raises(ValidationError) as raised:
        if failed:
            portal.record_failed_renewal(
                subscription, reason="declined", invoice_external_id="in_1"
            )
        else:
            portal.record_renewal(subscription, invoice_external_id="in_1")
    assert raised.value.code == "external_id_taken"
    session.expire_all()
    assert (subscription.current_period_end, subscription.status) == (period_end, status)
    assert (count(session, m.Invoice), count(session, m.Payment)) == before


def test_a_retried_renewal_returns_its_invoice_without_a_clash(
    subscription: m.Subscription,
) -> None:
    first = portal.record_renewal(subscription, idempotency_key="r1", invoice_external_id="in_1")
    again = portal.record_renewal(subscription, idempotency_key="r1", invoice_external_id="in_1")
    assert again.id == first.id


def test_a_retried_payment_returns_the_first_without_a_clash(customer: m.Customer) -> None:
    first = new_payment(customer, idempotency_key="k1", external_id="ch_1")
    assert new_payment(customer, idempotency_key="k1", external_id="ch_1").id == first.id


# -- Validation ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("external_id", "code"),
    [
        ("x" * 256, "too_long"),
        ("ext\n1", "control_characters"),
        (42, "not_text"),
    ],
)
@kinds
def test_a_bad_external_id_is_refused_with_nothing_written(
    session: Session, customer: m.Customer, kind: str, external_id: Any, code: str
) -> None:
    write, _, model = KINDS[kind]
    before = count(session, model)
    with pytest.raises(ValidationError) as raised:
        write(customer, external_id=external_id)
    assert (raised.value.field, raised.value.code) == ("external_id", code)
    assert count(session, model) == before


def test_an_external_id_may_look_like_a_card_number(customer: m.Customer) -> None:
    """P1 is about what people type; a 16-digit order number is an identifier."""
    assert new_invoice(customer, external_id="4242424242424242").external_id == "4242424242424242"


@pytest.mark.parametrize(
    ("metadata", "field", "code"),
    [
        (["plan", "pro"], "metadata", "not_a_mapping"),
        ({"": "x"}, "metadata", "invalid_key"),
        ({"k" * 41: "x"}, "metadata", "invalid_key"),
        ({"a[b]": "x"}, "metadata", "invalid_key"),
        ({1: "x"}, "metadata", "invalid_key"),
        ({"plan": 3}, "metadata['plan']", "not_text"),
        ({"plan": {"nested": "no"}}, "metadata['plan']", "not_text"),
        ({"plan": "x" * 501}, "metadata['plan']", "too_long"),
        ({"plan": "pro\x00"}, "metadata['plan']", "control_characters"),
        ({"card": "4242 4242 4242 4242"}, "metadata['card']", "card_number"),
        ({f"k{i}": "v" for i in range(51)}, "metadata", "too_many_keys"),
    ],
)
@kinds
def test_bad_metadata_is_refused_with_nothing_written(
    session: Session, customer: m.Customer, kind: str, metadata: Any, field: str, code: str
) -> None:
    """Stripe's limits: 50 keys of at most 40 characters, values of at most 500. P1."""
    write, _, model = KINDS[kind]
    before = count(session, model)
    with pytest.raises(ValidationError) as raised:
        write(customer, metadata=metadata)
    assert (raised.value.field, raised.value.code) == (field, code)
    assert count(session, model) == before


def test_metadata_at_the_limits_is_kept_whole(session: Session, customer: m.Customer) -> None:
    full = {f"key_{i:02d}".ljust(40, "x"): "é" * 500 for i in range(50)}
    invoice = new_invoice(customer, metadata=full)
    session.expire_all()
    assert invoice.metadata_ == full
    # A merge that would make 51 keys is refused and changes nothing.
    with pytest.raises(ValidationError) as raised:
        portal.update_metadata(invoice, {"one_more": "x"})
    assert raised.value.code == "too_many_keys"
    session.expire_all()
    assert invoice.metadata_ == full
    # Removing one makes room.
    portal.update_metadata(invoice, {"one_more": "x", next(iter(full)): None})
    session.expire_all()
    assert len(invoice.metadata_) == 50 and invoice.metadata_["one_more"] == "x"


def test_a_getter_takes_exactly_one_id(business: m.Business) -> None:
    for get in (
        portal.get_customer,
        portal.get_subscription,
        portal.get_invoice,
        portal.get_payment,
    ):
        with pytest.raises(ValidationError) as raised:
            get(business, mode="test")
        assert raised.value.code == "one_id_required"
        with pytest.raises(ValidationError) as raised:
            get(business, "cus_1", mode="test", external_id="x")
        assert raised.value.code == "one_id_required"
        with pytest.raises(ValidationError) as raised:
            get(business, mode="test", external_id=" ")
        assert raised.value.code == "required"


# -- Upserting customers by external id ----------------------------------------------------


def test_upsert_by_external_id_follows_an_email_change(
    session: Session, business: m.Business
) -> None:
    first = portal.upsert_customer(business, "ana@example.com", external_id="user_1", name="Ana")
    moved = portal.upsert_customer(business, "ana.souza@example.com", external_id="user_1")
    assert moved.id == first.id
    session.expire_all()
    assert moved.email == "ana.souza@example.com" and moved.name == "Ana"
    assert portal.find_customer(business, "ana@example.com", mode="test") is None
    assert count(session, m.Customer) == 1


def test_an_email_change_by_upsert_revokes_links_and_ends_sessions(
    app: Flask, client: FlaskClient, session: Session, business: m.Business
) -> None:
    """T5, T11: a link mailed to the old address no longer opens the portal."""
    customer = portal.upsert_customer(business, "ana@example.com", external_id="user_1")
    unused = portal.create_portal_session(customer)
    assert open_link(client, portal.create_portal_session(customer).url).status_code == 303
    assert client.get("/portal/").status_code == 200
    portal.upsert_customer(business, "ana.souza@example.com", external_id="user_1")
    assert client.get("/portal/").status_code == 302
    assert open_link(app.test_client(), unused.url, page_status=410).status_code == 410


def test_upsert_by_external_id_refuses_an_email_another_customer_has(
    session: Session, business: m.Business
) -> None:
    ana = portal.upsert_customer(business, "ana@example.com", external_id="user_1")
    portal.upsert_customer(business, "bruno@example.com", external_id="user_2")
    with pytest.raises(ValidationError) as raised:
        portal.upsert_customer(business, "bruno@example.com", external_id="user_1", name="X")
    assert (raised.value.field, raised.value.code) == ("email", "email_taken")
    session.expire_all()
    assert (ana.email, ana.name) == ("ana@example.com", "")


def test_upsert_by_email_gives_the_customer_its_external_id(
    session: Session, customer: m.Customer
) -> None:
    business = customer.business
    same = portal.upsert_customer(business, "ANA@example.com", external_id="user_1")
    assert same.id == customer.id
    assert portal.get_customer(business, mode="test", external_id="user_1").id == customer.id
    # Again with the same id: nothing to change.
    assert portal.upsert_customer(business, "ana@example.com", external_id="user_1").id == same.id


def test_upsert_never_moves_a_customer_to_another_external_id(
    session: Session, business: m.Business
) -> None:
    ana = portal.upsert_customer(business, "ana@example.com", external_id="user_1")
    with pytest.raises(ValidationError) as raised:
        portal.upsert_customer(business, "ana@example.com", external_id="user_9")
    assert (raised.value.field, raised.value.code) == ("external_id", "external_id_conflict")
    session.expire_all()
    assert ana.external_id == "user_1" and count(session, m.Customer) == 1
    # Said on purpose, it is done.
    portal.set_external_id(ana, "user_9")
    assert portal.upsert_customer(business, "ana@example.com", external_id="user_9").id == ana.id


def test_upsert_merges_metadata(session: Session, business: m.Business) -> None:
    portal.upsert_customer(business, "ana@example.com", metadata={"tier": "gold", "crm": "7"})
    ana = portal.upsert_customer(business, "ana@example.com", metadata={"tier": None, "ref": "x"})
    session.expire_all()
    assert ana.metadata_ == {"crm": "7", "ref": "x"}
    # Without metadata, it stays.
    portal.upsert_customer(business, "ana@example.com", name="Ana")
    session.expire_all()
    assert ana.metadata_ == {"crm": "7", "ref": "x"}


@pytest.mark.postgresql_only
def test_threads_upserting_one_new_external_id_at_once_end_with_one_customer(
    app: Flask, session: Session, business: m.Business
) -> None:
    """Eight workers feed the same new customer of the merchant at once (two addresses)."""
    ids: list[int] = []
    errors: list[Exception] = []
    barrier = threading.Barrier(8)
    business_id = business.id

    def upsert(address: str) -> None:
        with app.app_context():
            own = app.extensions["customer_portal"].session.get(m.Business, business_id)
            barrier.wait()
            try:
                ids.append(portal.upsert_customer(own, address, external_id="user_1").id)
            except Exception as error:  # the test reports any
                errors.append(error)

    addresses = [f"user{index % 2}@example.com" for index in range(8)]
    run_threads(lambda: upsert(addresses.pop()), 8)
    assert errors == [] and len(ids) == 8 and len(set(ids)) == 1
    assert count(session, m.Customer) == 1
