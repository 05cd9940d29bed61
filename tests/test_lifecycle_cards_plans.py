"""The data API over a subscription's life: the cards a merchant has on file, and plan changes.

What the merchant's code calls, and what the customer then sees on their pages.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

import flask_customer_portal as portal
from flask_customer_portal import ValidationError, signals
from flask_customer_portal import models as m

from .conftest import EXTERNAL_URL
from .helpers import (
    AUTHENTICATE,
    SUCCEEDS,
    Received,
    add_card,
    count,
    put_on_hold,
    record_signals,
    run_threads,
    signalled,
    stored_rows,
)

PAGE = "/portal/subscriptions"
CARD = {"brand": "visa", "last4": "4242", "exp_month": 12, "exp_year": 2034}


@pytest.fixture
def heard(app: Flask) -> Iterator[Received]:
    """The signals of cards and plan changes the app sends."""
    named = {
        "saved": signals.payment_method_saved,
        "removed": signals.payment_method_removed,
        "updated": signals.payment_method_updated,
        "changed": signals.subscription_changed,
    }
    with record_signals(app, named) as seen:
        yield seen


def save(customer: m.Customer, token: str = "pm_visa", **fields: Any) -> m.PaymentMethod:
    return portal.save_payment_method(customer, provider_token=token, **{**CARD, **fields})


def ended(customer: m.Customer, session: Session) -> m.Subscription:
    """A subscription of ``customer`` that was cancelled."""
    subscription = portal.start_subscription(
        customer, product="Acme Backup", price=500, currency="USD"
    )
    portal.transition(subscription, "cancelled")
    session.commit()
    return subscription


# -- Saving a card on file ---------------------------------------------------------------


def test_a_card_saved_by_the_merchant_shows_on_the_subscriptions_page(
    client: FlaskClient, signed_in: m.Customer, subscription: m.Subscription
) -> None:
    """The seed's promise: a normal subscriber sees the card type, its last four digits and
    an Edit button, not "none yet"."""
    assert "Payment method: none yet." in client.get(PAGE).text

    save(signed_in, brand="Visa", last4="4242", exp_month=7, exp_year=2031)

    page = client.get(PAGE).text
    assert "Payment method: Visa ending in 4242" in page
    assert "expires 07/2031" in page
    assert "Edit<span" in page and "none yet" not in page


def test_saving_the_same_token_again_updates_the_one_card(
    session: Session, customer: m.Customer, heard: Received
) -> None:
    """The processor renewed the card (new expiry): still one row, with the new details."""
    first = save(customer, "pm_1")
    unchanged = save(customer, "pm_1")
    renewed = save(customer, "pm_1", brand="MasterCard", last4="4444", exp_month=3, exp_year=2036)

    assert first.id == unchanged.id == renewed.id and count(session, m.PaymentMethod) == 1
    session.refresh(renewed)
    assert (renewed.brand, renewed.last4, renewed.exp_month, renewed.exp_year) == (
        "mastercard",
        "4444",
        3,
        2036,
    )
    assert renewed.is_default
    # Saved, then changed: the save that changed nothing is not announced.
    card = {"customer": customer.public_id, "payment_method": first.public_id}
    assert signalled(heard, "saved") == [card, card]


def test_a_new_default_card_replaces_the_old_default_which_stays_saved(
    customer: m.Customer, subscription: m.Subscription
) -> None:
    first = save(customer, "pm_1")
    second = save(customer, "pm_2", last4="0005")
    spare = save(customer, "pm_3", last4="1117", default=False)

    cards = portal.list_payment_methods(customer)
    assert [c.public_id for c in cards] == [second.public_id, spare.public_id, first.public_id]
    assert [c.is_default for c in cards] == [True, False, False]
    assert customer.payment_methods == cards
    # The subscription keeps the card it renews with: a new default only fills a gap.
    assert subscription.payment_method == first


def test_a_customers_first_card_is_their_default_even_when_not_asked(
    customer: m.Customer, subscription: m.Subscription
) -> None:
    card = save(customer, default=False)
    assert card.is_default
    assert subscription.payment_method is None  # only default=True attaches it


def test_a_default_card_goes_to_each_current_subscription_without_one(
    session: Session, customer: m.Customer, subscription: m.Subscription, heard: Received
) -> None:
    pending = portal.start_subscription(
        customer, product="Acme Sync", price=900, currency="USD", status="pending"
    )
    cancelled = ended(customer, session)
    other = portal.upsert_customer(customer.business, "bruno@example.com")
    others = portal.start_subscription(other, product="Acme Cloud", price=900, currency="USD")

    card = save(customer, "pm_1")
    later = portal.start_subscription(customer, product="Acme Mail", price=300, currency="USD")
    second = save(customer, "pm_2")

    assert subscription.payment_method == card and pending.payment_method == card
    assert cancelled.payment_method is None and others.payment_method is None
    assert later.payment_method == second
    assert [(s["subscription"], s["payment_method"]) for s in signalled(heard, "updated")] == [
        (subscription.public_id, card.public_id),
        (pending.public_id, card.public_id),
        (later.public_id, second.public_id),
    ]


@pytest.mark.parametrize(
    ("fields", "field", "code"),
    [
        ({"provider_token": "4242 4242 4242 4242"}, "provider_token", "card_number"),
        ({"provider_token": "pm_4000002760003184"}, "provider_token", "card_number"),
        ({"provider_token": ""}, "provider_token", "required"),
        ({"provider_token": "pm_1\nX"}, "provider_token", "control_characters"),
        ({"brand": "4000 0027 6000 3184"}, "brand", "card_number"),
        ({"brand": "visa!"}, "brand", "invalid_brand"),
        ({"brand": "v" * 21}, "brand", "too_long"),
        ({"last4": "42424"}, "last4", "invalid_last4"),
        ({"last4": 4242}, "last4", "invalid_last4"),
        ({"last4": "abcd"}, "last4", "invalid_last4"),
        ({"exp_month": 0}, "exp_month", "too_small"),
        ({"exp_month": 13}, "exp_month", "invalid_month"),
        ({"exp_year": 34}, "exp_year", "too_small"),
        ({"exp_year": 20345}, "exp_year", "invalid_year"),
        ({"default": "yes"}, "default", "not_boolean"),
    ],
)
def test_a_malformed_card_is_refused_and_nothing_is_written(
    session: Session,
    customer: m.Customer,
    subscription: m.Subscription,
    heard: Received,
    fields: dict[str, Any],
    field: str,
    code: str,
) -> None:
    """P1: a card number in any field is refused, and its digits are not repeated."""
    before = stored_rows(session)
    with pytest.raises(ValidationError) as refused:
        portal.save_payment_method(customer, **{"provider_token": "pm_1", **CARD, **fields})
    assert (refused.value.field, refused.value.code) == (field, code)
    assert "4242 4242" not in str(refused.value) and "3184" not in str(refused.value)
    assert stored_rows(session) == before and heard == []


@pytest.mark.postgresql_only
def test_workers_saving_the_same_card_at_once_end_with_one_default_card(
    app: Flask, session: Session, customer: m.Customer, subscription: m.Subscription
) -> None:
    """D1: eight webhooks delivering one card at once: one row, the default, on the plan."""
    save(customer, "pm_old")
    customer_id = customer.id
    ids: list[int] = []
    errors: list[str] = []
    barrier = threading.Barrier(8)

    def deliver() -> None:
        with app.app_context():
            own = app.extensions["customer_portal"].session.get(m.Customer, customer_id)
            barrier.wait()
            try:
                ids.append(save(own, "pm_new", last4="4444").id)
            except Exception as error:  # reported below, whatever it is
                errors.append(repr(error))

    run_threads(deliver, 8)
    assert errors == [] and len(set(ids)) == 1
    session.expire_all()
    cards = portal.list_payment_methods(customer)
    assert [(c.provider_token, c.is_default) for c in cards] == [
        ("pm_new", True),
        ("pm_old", False),
    ]


# -- Attaching and removing --------------------------------------------------------------


def test_attaching_a_saved_card_makes_it_the_one_the_plan_renews_with(
    client: FlaskClient, signed_in: m.Customer, subscription: m.Subscription, heard: Received
) -> None:
    save(signed_in, "pm_1")
    spare = save(signed_in, "pm_2", brand="amex", last4="0005", default=False)
    heard.clear()

    assert portal.attach_payment_method(subscription, spare) is subscription
    portal.attach_payment_method(subscription, spare)  # again: nothing changes

    assert "Payment method: Amex ending in 0005" in client.get(PAGE).text
    assert signalled(heard, "updated") == [
        {
            "customer": signed_in.public_id,
            "subscription": subscription.public_id,
            "payment_method": spare.public_id,
        }
    ]


def test_attaching_another_customers_card_or_to_an_ended_plan_is_refused(
    session: Session, customer: m.Customer, subscription: m.Subscription, heard: Received
) -> None:
    """Z1: a card is only ever used for its own customer's subscriptions."""
    other = portal.upsert_customer(customer.business, "bruno@example.com")
    theirs = save(other, "pm_bruno")
    mine = save(customer, "pm_ana")
    cancelled = ended(customer, session)
    heard.clear()

    with pytest.raises(ValidationError) as refused:
        portal.attach_payment_method(subscription, theirs)
    assert (refused.value.field, refused.value.code) == ("payment_method", "other_customer")
    with pytest.raises(ValidationError) as refused:
        portal.attach_payment_method(cancelled, mine)
    assert refused.value.code == "subscription_ended"

    session.expire_all()
    assert subscription.payment_method == mine and cancelled.payment_method is None
    assert heard == []


def test_removing_the_default_card_falls_back_to_the_newest_other_card(
    client: FlaskClient, signed_in: m.Customer, subscription: m.Subscription, heard: Received
) -> None:
    oldest = save(signed_in, "pm_1", last4="1111", default=False)
    newest = save(signed_in, "pm_2", last4="2222", default=False)
    default = save(signed_in, "pm_3", last4="3333")
    portal.attach_payment_method(subscription, default)
    heard.clear()

    portal.remove_payment_method(default)

    assert portal.list_payment_methods(signed_in) == [newest, oldest]
    assert newest.is_default and subscription.payment_method == newest
    assert "Payment method: Visa ending in 2222" in client.get(PAGE).text
    assert heard == [
        ("removed", {"customer": signed_in.public_id, "payment_method": default.public_id}),
        (
            "updated",
            {
                "customer": signed_in.public_id,
                "subscription": subscription.public_id,
                "payment_method": newest.public_id,
            },
        ),
    ]


def test_removing_a_card_moves_its_subscriptions_to_the_default(
    session: Session, customer: m.Customer, subscription: m.Subscription
) -> None:
    default = save(customer, "pm_1")
    spare = save(customer, "pm_2", default=False)
    backup = portal.start_subscription(customer, product="Acme Backup", price=500, currency="USD")
    for using in (subscription, backup):
        portal.attach_payment_method(using, spare)
    portal.transition(backup, "cancelled")
    session.commit()

    portal.remove_payment_method(spare)

    assert subscription.payment_method == default and default.is_default
    assert backup.payment_method is None  # it has ended: it takes no card
    assert portal.list_payment_methods(customer) == [default]


def test_removing_the_only_card_leaves_none(
    client: FlaskClient,
    session: Session,
    signed_in: m.Customer,
    subscription: m.Subscription,
    heard: Received,
) -> None:
    card = save(signed_in)
    heard.clear()

    portal.remove_payment_method(card)

    assert portal.list_payment_methods(signed_in) == [] and subscription.payment_method is None
    assert count(session, m.PaymentMethod) == 0
    assert "Payment method: none yet." in client.get(PAGE).text
    assert [name for name, _ in heard] == ["removed"]


def test_a_removed_card_leaves_the_payments_made_with_it(
    client: FlaskClient, signed_in: m.Customer, subscription: m.Subscription
) -> None:
    """The billing history keeps a payment whose card the processor detached."""
    put_on_hold(subscription)
    card = add_card(signed_in, SUCCEEDS)
    outcome = portal.reactivate_subscription(
        subscription, card, idempotency_key="pay-1", return_url=EXTERNAL_URL + "/back"
    )
    assert outcome.status == "succeeded"

    payment = outcome.payment

    portal.remove_payment_method(card)

    assert payment.status == "succeeded" and payment.payment_method is None
    billing = client.get("/portal/billing")
    assert billing.status_code == 200 and billing.text.count("$29.00") >= 2


def test_a_card_paying_right_now_is_not_removed(
    session: Session, customer: m.Customer, subscription: m.Subscription
) -> None:
    """P4: a payment waiting for the bank's confirmation still needs its card."""
    put_on_hold(subscription)
    card = add_card(customer, AUTHENTICATE)
    outcome = portal.reactivate_subscription(
        subscription, card, idempotency_key="pay-1", return_url=EXTERNAL_URL + "/back"
    )
    assert outcome.status == "requires_action"

    with pytest.raises(ValidationError) as refused:
        portal.remove_payment_method(card)

    assert refused.value.code == "payment_in_flight"
    session.expire_all()
    assert portal.list_payment_methods(customer) == [card]


# -- Lists ---------------------------------------------------------------------------------


def test_lists_are_newest_first_and_filter_by_status(
    session: Session, customer: m.Customer, subscription: m.Subscription
) -> None:
    pending = portal.start_subscription(
        customer, product="Acme Sync", price=900, currency="USD", status="pending"
    )
    cancelled = ended(customer, session)
    other = portal.upsert_customer(customer.business, "bruno@example.com")
    portal.start_subscription(other, product="Acme Cloud", price=900, currency="USD")

    every = [cancelled, pending, subscription]
    assert portal.list_subscriptions(customer) == every == customer.subscriptions
    assert portal.list_subscriptions(customer, status="active") == [subscription]
    assert portal.list_subscriptions(customer, status=m.CURRENT_STATUSES) == [
        pending,
        subscription,
    ]
    assert portal.list_subscriptions(customer, status=[]) == []
    with pytest.raises(ValidationError) as refused:
        portal.list_subscriptions(customer, status="paused")
    assert (refused.value.field, refused.value.code) == ("status", "invalid_choice")


def test_invoices_are_listed_newest_issued_first(
    customer: m.Customer, subscription: m.Subscription
) -> None:
    line = [{"description": "Acme Cloud Pro", "unit_amount": 2900}]
    start = subscription.current_period_start
    older = portal.issue_invoice(customer, line, currency="USD", issued_at=start)
    newer = portal.issue_invoice(customer, line, currency="USD", status="draft")
    oldest = portal.issue_invoice(
        customer, line, currency="USD", issued_at=start.replace(year=start.year - 1)
    )
    portal.record_payment(customer, amount=2900, currency="USD", invoice=older)

    assert portal.list_invoices(customer) == [newer, older, oldest] == customer.invoices
    assert portal.list_invoices(customer, status="open") == [oldest]
    assert portal.list_invoices(customer, status=("paid", "draft")) == [newer, older]
    with pytest.raises(ValidationError):
        portal.list_invoices(customer, status=3)


# -- Plan and quantity changes -------------------------------------------------------------


def test_a_plan_change_shows_on_the_subscriptions_page_at_once(
    client: FlaskClient,
    session: Session,
    signed_in: m.Customer,
    subscription: m.Subscription,
    heard: Received,
) -> None:
    period = (subscription.current_period_start, subscription.current_period_end)
    renews = subscription.next_billing_at

    portal.change_plan(subscription, plan="Team", price=9900)

    page = client.get(PAGE).text
    assert "· Team</span>" in page and "$99.00 every month" in page
    assert "· Pro</span>" not in page
    session.refresh(subscription)
    assert (subscription.current_period_start, subscription.current_period_end) == period
    assert subscription.next_billing_at == renews and subscription.currency == "USD"
    assert signalled(heard, "changed") == [
        {
            "customer": signed_in.public_id,
            "subscription": subscription.public_id,
            "changes": {"plan": ("Pro", "Team"), "price": (2900, 9900)},
        }
    ]


def test_a_quantity_change_multiplies_the_price(
    client: FlaskClient, signed_in: m.Customer, subscription: m.Subscription, heard: Received
) -> None:
    portal.change_quantity(subscription, 3)

    assert subscription.amount == 8700
    assert "$87.00 every month (3 × $29.00)" in client.get(PAGE).text
    assert [kwargs["changes"] for kwargs in signalled(heard, "changed")] == [{"quantity": (1, 3)}]


def test_a_plan_change_may_change_every_term_but_the_currency(
    customer: m.Customer, subscription: m.Subscription, heard: Received
) -> None:
    portal.change_plan(
        subscription,
        plan="Annual",
        price=29000,
        product="Acme Cloud Plus",
        interval="year",
        interval_count=1,
        quantity=2,
    )

    assert (subscription.name, subscription.amount, subscription.interval) == (
        "Acme Cloud Plus Annual",
        58000,
        "year",
    )
    (changed,) = signalled(heard, "changed")
    assert set(changed["changes"]) == {"product", "plan", "price", "interval", "quantity"}


def test_an_unchanged_plan_changes_nothing_and_says_nothing(
    session: Session, subscription: m.Subscription, heard: Received
) -> None:
    before = stored_rows(session)

    portal.change_plan(subscription, plan="Pro", price=2900)
    portal.change_quantity(subscription, 1)

    assert stored_rows(session) == before and heard == []


@pytest.mark.parametrize(
    ("call", "field", "code"),
    [
        (lambda s: portal.change_plan(s, plan="Team", price=-1), "price", "negative"),
        (lambda s: portal.change_plan(s, plan="Team", price="99.00"), "price", "not_minor_units"),
        (
            lambda s: portal.change_plan(s, plan="4242 4242 4242 4242", price=9900),
            "plan",
            "card_number",
        ),
        (
            lambda s: portal.change_plan(s, plan="Team", price=9900, interval="fortnight"),
            "interval",
            "invalid_choice",
        ),
        (lambda s: portal.change_plan(s, plan="T", price=1, quantity=0), "quantity", "too_small"),
        (lambda s: portal.change_quantity(s, 0), "quantity", "too_small"),
        (lambda s: portal.change_quantity(s, 2.5), "quantity", "too_small"),
    ],
)
def test_a_malformed_plan_change_is_refused_and_nothing_is_written(
    session: Session,
    subscription: m.Subscription,
    heard: Received,
    call: Any,
    field: str,
    code: str,
) -> None:
    before = stored_rows(session)
    with pytest.raises(ValidationError) as refused:
        call(subscription)
    assert (refused.value.field, refused.value.code) == (field, code)
    assert stored_rows(session) == before and heard == []


def test_an_ended_subscription_keeps_its_plan(
    session: Session, customer: m.Customer, heard: Received
) -> None:
    cancelled = ended(customer, session)
    before = stored_rows(session)

    for call in (
        lambda: portal.change_plan(cancelled, plan="Team", price=9900),
        lambda: portal.change_quantity(cancelled, 2),
    ):
        with pytest.raises(ValidationError) as refused:
            call()
        assert (refused.value.field, refused.value.code) == ("subscription", "not_current")

    assert stored_rows(session) == before and heard == []


def test_the_integration_guides_whole_life_runs_as_written(
    client: FlaskClient, signed_in: m.Customer, business: m.Business
) -> None:
    """docs/integration.md, "A subscription's whole life": its code as written, then the page."""
    guide = (Path(__file__).parents[1] / "docs" / "integration.md").read_text()
    section = guide.split("### A subscription's whole life", 1)[1]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    exec(code, {"portal": portal, "business": business})  # noqa: S102 - our own docs

    page = client.get(PAGE).text
    assert "$297.00 every month (3 × $99.00)" in page
    assert "Payment method: Mastercard ending in 4444" in page and "Cancels on" in page
    (plan,) = portal.list_subscriptions(signed_in)
    assert (plan.external_id, plan.metadata_) == ("sub_1Q0abc", {"order": "A-77"})
    (invoice,) = portal.list_invoices(signed_in)
    assert (invoice.status, invoice.external_id) == ("paid", "in_1Q1xyz")
    assert portal.get_customer(business, external_id="user_1842", mode="test") == signed_in
